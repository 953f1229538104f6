"""Image references: ``[host[:port]/]repository[:tag]``, as docker and skopeo read them."""

from __future__ import annotations

from dataclasses import dataclass

DOCKER_HUB = "docker.io"


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
