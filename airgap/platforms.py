"""CPU architectures and the names each goes by: the one table of them.

Elastic's file names and the manifest say ``x86_64`` and ``arm64``; image platforms,
Docker and Go say ``amd64`` and ``arm64``; ``uname -m`` says ``x86_64`` and ``aarch64``.
"""

from __future__ import annotations

import platform as host
from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    """One CPU architecture: its name in Elastic's files, in image platforms, and others."""

    elastic: str
    oci: str
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every name it is known by."""
        return (self.elastic, self.oci, *self.aliases)


ARCHITECTURES = (
    Architecture("x86_64", "amd64"),
    Architecture("arm64", "arm64", ("aarch64",)),
)


def find_architecture(name: str) -> Architecture | None:
    """The architecture ``name`` (any of its names, any case) means, or None."""
    lowered = name.lower()
    return next((a for a in ARCHITECTURES if lowered in a.names), None)


def oci_architecture(name: str) -> str:
    """``name`` as image platforms spell it (``x86_64`` -> ``amd64``); a name the table
    does not know is returned lower-cased, as it is."""
    found = find_architecture(name)
    return found.oci if found is not None else name.lower()


def host_platform() -> str:
    """This machine's platform, as images name it (``linux/amd64``)."""
    return f"linux/{oci_architecture(host.machine())}"
