"""Image references: ``[host[:port]/]repository[:tag]``, as docker and skopeo read them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from airgap.errors import UsageError

DOCKER_HUB = "docker.io"
# Docker's reference grammar (distribution/reference), without digests.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAGGED = re.compile(rf"(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?\Z",
                     re.ASCII)  # Go's \w: [0-9A-Za-z_] only


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


def docker_tag(text: str) -> str:
    """``text`` as the name:tag Docker keeps for an image, ``:latest`` added when no tag
    is given (as ``docker tag`` does); a name Docker would refuse is a usage error."""
    first, _, rest = text.partition("/")
    # Only a host may have capitals, and a first part without ".", ":" is no host.
    upper_path = (rest and not _has_host(first) and first != first.lower())
    # Docker's 255 limit is on the full name (docker.io/library/ added), tag left out.
    if not _TAGGED.match(text) or upper_path or len(parse_reference(text).name) > 255:
        raise UsageError(f"--tag {text!r}: not an image name Docker accepts",
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
