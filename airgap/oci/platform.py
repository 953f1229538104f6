"""Image platforms: ``linux/amd64``, ``linux/arm64/v8``, as registries and engines name them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airgap.platforms import oci_architecture

#: The operating systems image platforms name (Go's GOOS values).
_OSES = frozenset({"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris",
                   "illumos", "aix", "plan9", "js", "wasip1", "android", "ios"})


@dataclass(frozen=True)
class Platform:
    """An OCI platform; ``arm64`` with no variant is the same as ``arm64/v8``."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """What docker takes for ``--platform``: ``linux/amd64``, ``linux/arm64/v8``, or an
        architecture alone (``arm64``, ``amd64``, ``x86_64``: linux is meant)."""
        parts = text.strip().lower().split("/")
        if len(parts) == 1 or (len(parts) == 2 and parts[0] not in _OSES):
            parts = ["linux", *parts]
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"{text!r} is not a platform like linux/amd64 or arm64")
        return cls(parts[0], oci_architecture(parts[1]), parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Platform:
        """The platform an image config (or a descriptor's ``platform``) declares."""
        variant = config.get("variant")
        return cls(str(config.get("os", "")), str(config.get("architecture", "")),
                   str(variant) if variant else None)

    def matches(self, other: Platform) -> bool:
        """Whether an image built for ``other`` runs as this platform."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        if self.architecture == "arm64":
            return (self.variant or "v8") == (other.variant or "v8")
        return self.variant is None or self.variant == other.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)
