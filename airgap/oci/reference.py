"""Image references: ``[host[:port]/]repository[:tag]``, as docker and skopeo read them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from airgap.errors import UsageError, setting

DOCKER_HUB = "docker.io"
# Docker's reference grammar (distribution/reference), without digests. Go's \w is
# [0-9A-Za-z_] only, hence re.ASCII.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_REPOSITORY = re.compile(rf"{_NAME}\Z", re.ASCII)
_TAGGED = re.compile(rf"{_NAME}(?::{_TAG})?\Z", re.ASCII)
_TAG_ONLY = re.compile(rf"{_TAG}\Z", re.ASCII)


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference; ``repository`` is the path inside the registry."""

    host: str
    repository: str
    tag: str

    @property
    def name(self) -> str:
        """The full name without tag, e.g. ``docker.elastic.co/package-registry/distribution``."""
        return f"{self.host}/{self.repository}"

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


def _has_host(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost"


def is_image_name(text: str, *, tagged: bool) -> bool:
    """Whether Docker accepts ``text`` as an image name: a repository, with an optional
    tag when ``tagged`` (never a digest)."""
    first, _, rest = text.partition("/")
    # Only a host may have capitals, and a first part without ".", ":" is no host.
    upper_path = bool(rest) and not _has_host(first) and first != first.lower()
    pattern = _TAGGED if tagged else _REPOSITORY
    # Docker's 255 limit is on the full name (docker.io/library/ added), tag left out.
    return bool(pattern.match(text)) and not upper_path \
        and len(parse_reference(text).name) <= 255


def is_tag(text: str) -> bool:
    """Whether ``text`` is a tag Docker accepts."""
    return bool(_TAG_ONLY.match(text))


def docker_tag(text: str) -> str:
    """``text`` as the name:tag Docker keeps for an image, ``:latest`` added when no tag
    is given (as ``docker tag`` does); a name Docker would refuse is a usage error."""
    if not is_image_name(text, tagged=True):
        raise UsageError(f"{setting('tags')} {text!r}: not an image name Docker accepts",
                         details=["like registry.corp:5000/elastic/package-registry:9.0.0: "
                                  "lower-case name, optional tag"])
    last = text.rsplit("/", 1)[-1]
    return text if ":" in last else f"{text}:latest"


def parse_reference(text: str, default_tag: str = "latest") -> ImageReference:
    """Parse ``text`` the way docker does (a bare name is on Docker Hub)."""
    name, tag = text, default_tag
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = text.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and _has_host(first):
        host, repository = first, rest
    else:
        host, repository = DOCKER_HUB, name
    if host == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return ImageReference(host=host, repository=repository, tag=tag)
