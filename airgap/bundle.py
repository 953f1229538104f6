"""The bundle directory: its layout, lock, checksum index and description.

::

    BUNDLE/
      bundle.json          what is inside, where it came from, how it was verified
      SHA512SUMS           every other file, coreutils format: `sha512sum -c` checks it
      SHA512SUMS.asc       optional: the operator's signature of SHA512SUMS
      keys/                the public keys the contents were verified with
      images/              one OCI image layout, every platform, each blob once
      downloads/           artifacts.elastic.co's downloads/ tree, ready to serve
      packages/            integration package zips with their .sig

See docs/bundle.md for the format.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from airgap.errors import BundleError, ServerResponseError

FORMAT = 1
SUMS = "SHA512SUMS"
SUMS_SIGNATURE = "SHA512SUMS.asc"
DESCRIPTION = "bundle.json"
LOCK = ".airgap.lock"
KEYS = "keys"
IMAGES = "images"        # one OCI image layout
DOWNLOADS = "downloads"  # artifacts.elastic.co's downloads/ tree
PACKAGES = "packages"    # packages/<name>/<name>-<version>.zip and .sig
#: The folders only airgap writes: a fetch may remove what it does not list there.
OWN_FOLDERS = (IMAGES, DOWNLOADS, PACKAGES, KEYS)
#: Files of a bundle that SHA512SUMS does not list (it cannot list itself or its signature).
NOT_SUMMED = frozenset({SUMS, SUMS_SIGNATURE, LOCK})
_SUM_LINE = re.compile(r"^([0-9a-f]{128}) [ *](.+)\Z")


@dataclass(frozen=True)
class Item:
    """One file of the bundle as bundle.json describes it."""

    path: str
    kind: str
    size: int
    sha512: str
    source: str | None = None
    verification: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The bundle.json form."""
        return {"path": self.path, "kind": self.kind, "size": self.size, "sha512": self.sha512,
                "source": self.source, "verification": dict(self.verification)}


def relative(bundle: Path, path: Path) -> str:
    """``path`` below ``bundle`` as a POSIX path, refusing anything outside it."""
    resolved = path.resolve()
    root = bundle.resolve()
    if root not in resolved.parents:
        raise ServerResponseError(f"{path} is outside the bundle {bundle}")
    return resolved.relative_to(root).as_posix()


def inside(bundle: Path, relative_path: str) -> Path:
    """``bundle / relative_path``, refusing absolute paths and anything that leaves it."""
    if relative_path.startswith("/") or "\\" in relative_path or "\n" in relative_path:
        raise BundleError(f"{relative_path!r} is not a path inside the bundle")
    target = bundle / relative_path
    root = bundle.resolve()
    if root not in target.resolve().parents:
        raise BundleError(f"{relative_path!r} leads outside the bundle")
    return target


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through ``path.part`` and a rename."""
    part = path.with_name(path.name + ".part")
    part.write_text(text, encoding="utf-8")
    part.replace(path)


def check_output_folder(root: Path) -> None:
    """Refuse to write a bundle into a folder that holds something else.

    A fetch removes files it does not list from the bundle's own folders, so it must
    only ever work in a new or empty folder, a bundle, or what an interrupted fetch left
    (recognised by its lock file).
    """
    if not root.exists():
        return
    if not root.is_dir():
        raise BundleError(f"{root} exists and is not a directory",
                          details=["give -o a new or empty folder, or an existing bundle"])
    if (root / DESCRIPTION).is_file() or (root / LOCK).is_file():
        return
    try:
        empty = next(root.iterdir(), None) is None
    except OSError as exc:
        raise BundleError(f"{root}: cannot read the folder: {exc.strerror}") from None
    if not empty:
        raise BundleError(f"{root} is not empty and is not an airgap bundle",
                          details=["give -o a new or empty folder, or an existing bundle"])


def stray_files(root: Path, wanted: Iterable[str]) -> list[str]:
    """Files in the bundle's own folders that ``wanted`` does not name, and ``.part`` files
    left at the top: what earlier or interrupted fetches left behind."""
    keep = set(wanted)
    found = [p.relative_to(root).as_posix() for folder in OWN_FOLDERS
             for p in (root / folder).rglob("*") if p.is_file() or p.is_symlink()]
    found += [p.name for p in root.glob("*.part") if p.is_file()]
    return sorted(p for p in found if p not in keep)


class BundleLock:
    """Holds ``BUNDLE/.airgap.lock`` while a fetch writes the bundle.

    An advisory ``flock``: the kernel releases it when the process ends, however it ends,
    so a lock left by a killed run never blocks the next one. The file itself is removed
    only when the fetch succeeds: while it is there, the folder is a bundle in the making.
    """

    def __init__(self, bundle: Path) -> None:
        self.path = bundle / LOCK
        self._fd: int | None = None

    def __enter__(self) -> BundleLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise BundleError(f"another airgap (pid {holder}) is writing {self.path.parent}",
                              details=["wait for it to finish, or stop it, then run again"]
                              ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._fd is not None:
            if kind is None:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            os.close(self._fd)
            self._fd = None


def format_sums(entries: Iterable[tuple[str, str]]) -> str:
    """SHA512SUMS text: ``<hex>  <path>`` lines sorted by path, as ``sha512sum`` writes."""
    lines = []
    for path, digest in sorted(entries):
        if "\n" in path or "\\" in path:
            raise BundleError(f"{path!r}: a name sha512sum cannot list")
        lines.append(f"{digest}  {path}\n")
    return "".join(lines)


def parse_sums(text: str) -> tuple[dict[str, str], list[str]]:
    """The entries of a SHA512SUMS file, and a message for each line that is not one."""
    entries: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _SUM_LINE.match(line)
        if match is None:
            problems.append(f"{SUMS} line {number}: not `<sha512>  <path>`")
            continue
        digest, path = match.groups()
        if path in entries:
            problems.append(f"{SUMS} line {number}: {path} is listed twice")
        entries[path] = digest
    return entries, problems


def read_description(bundle: Path) -> dict[str, Any]:
    """bundle.json, or a clear error when the bundle has none or it is damaged."""
    path = bundle / DESCRIPTION
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{bundle} is not a complete airgap bundle: it has no {DESCRIPTION}",
                          details=["an interrupted `airgap fetch` leaves none: run it again"]
                          ) from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BundleError(f"{path}: not an airgap bundle description of format {FORMAT}")
    return document
