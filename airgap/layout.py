"""What a bundle's files are, from where they lie rather than from what bundle.json says.

bundle.json is not signed by anyone: ``airgap verify`` reads the directory itself to
decide which files must carry a signature (every artifact under ``downloads/`` an
``.asc``, every package zip under ``packages/`` a ``.sig``), and lists what is not a
regular file (symbolic links, FIFOs, ...) so that nothing is ever read through it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from airgap import bundle

DOWNLOADS = bundle.DOWNLOADS + "/"
PACKAGES = bundle.PACKAGES + "/"
ARTIFACT_SIGNATURE = ".asc"
ARTIFACT_CHECKSUM = ".sha512"
PACKAGE = ".zip"
PACKAGE_SIGNATURE = ".sig"


@dataclass(frozen=True)
class Odd:
    """A directory entry that is not a regular file: never read, never followed."""

    path: str
    kind: str
    message: str


@dataclass
class Scan:
    """Every entry below a bundle: its regular files, and the entries that are not."""

    regular: set[str] = field(default_factory=set)
    odd: list[Odd] = field(default_factory=list)

    @property
    def entries(self) -> set[str]:
        """Every path found that is not a directory (regular or not)."""
        return self.regular | {o.path for o in self.odd}


def scan(root: Path) -> Scan:
    """Walk ``root`` without following symbolic links (to files or directories)."""
    found = Scan()

    def unreadable(error: OSError) -> None:
        name = Path(str(error.filename or root))
        where = name.relative_to(root).as_posix() if name != root else "."
        found.odd.append(Odd(where, "unreadable", f"cannot be listed: {error.strerror}"))

    for folder, directories, files in os.walk(root, onerror=unreadable, followlinks=False):
        base = Path(folder)
        for name in directories + files:
            path = base / name
            relative = path.relative_to(root).as_posix()
            try:
                mode = path.lstat().st_mode
            except OSError as exc:
                found.odd.append(Odd(relative, "unreadable", f"cannot be read: {exc.strerror}"))
                continue
            if stat.S_ISLNK(mode):
                found.odd.append(Odd(relative, "symlink", f"a symbolic link to "
                                     f"{_target(path)}: a bundle holds only regular files; "
                                     "it is not followed"))
            elif stat.S_ISREG(mode):
                found.regular.add(relative)
            elif not stat.S_ISDIR(mode):
                found.odd.append(Odd(relative, "unreadable", "not a regular file (a FIFO, "
                                                             "socket or device): not read"))
    return found


def _target(path: Path) -> str:
    try:
        return repr(str(path.readlink()))
    except OSError:
        return "an unreadable target"


def signature_for(path: str) -> str | None:
    """Where the signature of the file at ``path`` must be, or None if it needs none."""
    if path.startswith(DOWNLOADS) and not path.endswith((ARTIFACT_SIGNATURE,
                                                         ARTIFACT_CHECKSUM)):
        return path + ARTIFACT_SIGNATURE
    if path.startswith(PACKAGES) and path.endswith(PACKAGE):
        return path + PACKAGE_SIGNATURE
    return None


def checksum_for(path: str) -> str | None:
    """Where Elastic's ``.sha512`` of the file at ``path`` must be, or None."""
    if signature_for(path) is not None and path.startswith(DOWNLOADS):
        return path + ARTIFACT_CHECKSUM
    return None


def kind_of(path: str) -> str | None:
    """The bundle.json kind the file at ``path`` must have, when its place decides it."""
    if path.startswith(DOWNLOADS):
        if path.endswith(ARTIFACT_SIGNATURE):
            return "artifact-signature"
        return "artifact-checksum" if path.endswith(ARTIFACT_CHECKSUM) else "artifact"
    if path.startswith(PACKAGES):
        if path.endswith(PACKAGE):
            return "package"
        if path.endswith(PACKAGE_SIGNATURE):
            return "package-signature"
    return None
