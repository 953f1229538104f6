"""Every entry below a bundle, read from the directory itself, never through a link.

What is not a regular file (symbolic links, FIFOs, devices, ...) is listed apart, so
that nothing is ever read through it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path


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


def scan(root: Path, *, skip: frozenset[str] = frozenset()) -> Scan:
    """Walk ``root`` without following symbolic links (to files or directories); the
    entries of ``root`` named in ``skip`` are left out."""
    found = Scan()

    def unreadable(error: OSError) -> None:
        name = Path(str(error.filename or root))
        where = name.relative_to(root).as_posix() if name != root else "."
        found.odd.append(Odd(where, "unreadable", f"cannot be listed: {error.strerror}"))

    for folder, directories, files in os.walk(root, onerror=unreadable, followlinks=False):
        base = Path(folder)
        if base == root:
            directories[:] = [d for d in directories if d not in skip]
            files = [f for f in files if f not in skip]
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
