"""Which package versions to take from a ``/search`` answer, as Kibana takes them.

The answer is a list of packages (elastic/package-registry's ``BasePackage``); each entry
is checked before anything is taken from it: its version a package version, its
``download`` and ``signature_path`` paths on the registry that end in the file names the
name and version make. Kibana appends those paths to its registry URL rather than
composing them, and so does airgap: a mirror may lay its files out as it likes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airgap import package_registry
from airgap.errors import NotFoundError, ServerResponseError

VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?\Z")
#: More entries than any package has versions: an answer past it is not a search answer.
MAX_ENTRIES = 10_000
# A path on the registry: absolute, no query, no fragment, no backslash, no `..`.
_PATH = re.compile(r"^/(?:[A-Za-z0-9._~%+-]+/)*[A-Za-z0-9._~%+-]+\Z")


@dataclass(frozen=True)
class Offered:
    """One version a ``/search`` answer offers, with the paths of its zip and signature
    (None when the registry has no signature for it)."""

    name: str
    version: str
    download: str
    signature_path: str | None


def version_key(version: str) -> tuple[int, int, int, int, str]:
    """Semantic version order: a pre-release sorts before its release."""
    match = VERSION.match(version)
    if match is None:
        raise ValueError(version)
    major, minor, patch, pre = match.groups()
    return int(major), int(minor), int(patch), 0 if pre else 1, pre or ""


def _path(value: Any, ending: str, field: str, source: str) -> str:
    if not isinstance(value, str) or not _PATH.match(value) or ".." in value.split("/") \
            or not value.endswith(f"/{ending}"):
        raise ServerResponseError(f"{source}: {field} {str(value)[:120]!r} is not a path on "
                                  f"the registry ending in {ending}")
    return value


def offered_versions(name: str, answer: Any, source: str) -> list[Offered]:
    """Every version of ``name`` in a ``/search`` answer, oldest first, each checked."""
    if not isinstance(answer, list):
        raise ServerResponseError(f"{source}: expected a JSON list of packages")
    if len(answer) > MAX_ENTRIES:
        raise ServerResponseError(f"{source}: {len(answer)} packages, more than any search "
                                  "answer holds")
    found: dict[str, Offered] = {}
    for entry in answer:
        if not isinstance(entry, dict) or entry.get("name") != name:
            continue
        version = entry.get("version")
        if not isinstance(version, str) or not VERSION.match(version):
            raise ServerResponseError(f"{source}: {str(version)[:40]!r} is not a package "
                                      "version")
        filename = package_registry.package_filename(name, version)
        download = _path(entry.get("download"), filename, "download", source)
        signature = entry.get("signature_path")
        if signature is not None:
            signature = _path(signature, f"{filename}.sig", "signature_path", source)
        found.setdefault(version, Offered(name, version, download, signature))
    return sorted(found.values(), key=lambda o: version_key(o.version))


def choose(name: str, offered: list[Offered], *, version: str | None, all_versions: bool,
           where: str, why: str = "") -> list[Offered]:
    """The versions to take: ``version`` when pinned, every one, or the newest. ``where``
    says what was asked and ``why`` why the package is wanted, for the message when
    nothing fits."""
    label = f"{name} ({why})" if why else name
    if version is not None:
        pinned = [o for o in offered if o.version == version]
        if pinned:
            return pinned
        compatible = ", ".join(o.version for o in offered[-8:]) or "none"
        raise NotFoundError(f"package {name}@{version}: not a version compatible with "
                            f"{where}" + (f" ({why})" if why else ""),
                            details=[f"compatible versions: {compatible}",
                                     "pin one of them in registry.packages, or give the name "
                                     "alone for the newest"])
    if not offered:
        raise NotFoundError(f"package {label}: no version is compatible with {where}",
                            details=["check the name, or remove it from `integrations` or "
                                     "registry.packages"])
    return list(offered) if all_versions else [offered[-1]]
