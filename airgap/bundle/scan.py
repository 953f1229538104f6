"""Every entry below a bundle, read from the directory itself, never through a link.

What is not a regular file (symbolic links, FIFOs, devices, ...) is listed apart, so
that nothing is ever read through it. A ``lost+found`` folder at the top is the medium's,
not the bundle's (a fresh ext4 file system holds one, empty, mode 0700): it is looked
into, never walked with the rest; files in it are what fsck recovered of a damaged medium.
What macOS and Windows add to a medium (:mod:`airgap.bundle.medium`: ``._NAME``,
``.DS_Store``, ``.Trashes/``, ``System Volume Information/``, ...), recognised by name and
content, is listed apart too (``Scan.medium``), and a medium's folder is never walked.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from airgap.bundle import medium
from airgap.bundle.medium import MediumFiles

#: The folder ext2/3/4's mkfs makes at the top of a medium, where fsck puts what it finds
#: of a damaged file system.
LOST_AND_FOUND = "lost+found"
_LOST_SHOWN = 10


@dataclass(frozen=True)
class LostAndFound:
    """The ``lost+found`` folder at the top of a bundle, a volume or an output folder:
    what fsck put in it, or why it could not be listed (a person who is not root may not
    list root's 0700 folder)."""

    names: tuple[str, ...]
    unreadable: str | None = None

    def warning(self, where: Path) -> str | None:
        """What to say of a harmless one (empty, or root's and not listable); None when it
        holds something."""
        if self.names:
            return None
        if self.unreadable is not None:
            return (f"{where / LOST_AND_FOUND}: the medium's folder for what fsck recovers "
                    f"could not be looked into ({self.unreadable}), ignored: if fsck put "
                    "files there, the medium was damaged")
        return (f"{where / LOST_AND_FOUND}: the empty folder a fresh ext4 medium holds, "
                "ignored")

    def problem(self) -> Odd | None:
        """The damage it shows when fsck put files in it; None when it is empty."""
        if not self.names:
            return None
        shown = ", ".join(self.names[:_LOST_SHOWN]) + (
            f" and {len(self.names) - _LOST_SHOWN} more" if len(self.names) > _LOST_SHOWN
            else "")
        return Odd(f"{LOST_AND_FOUND}/", "lost+found",
                   f"holds {len(self.names)} entr{'y' if len(self.names) == 1 else 'ies'} "
                   f"fsck recovered ({shown}): the medium's file system was damaged: check "
                   "it, or copy onto it again")


def lost_and_found(folder: Path) -> LostAndFound | None:
    """``folder``'s ``lost+found`` folder (never through a link), or None when it has none
    (or holds something else of that name, which is then scanned as any entry is)."""
    path = folder / LOST_AND_FOUND
    try:
        if not stat.S_ISDIR(path.lstat().st_mode):
            return None
    except OSError:
        return None
    try:
        return LostAndFound(tuple(sorted(entry.name for entry in path.iterdir())))
    except OSError as exc:
        return LostAndFound((), exc.strerror or str(exc))


def medium_folder(entry: Path) -> bool:
    """Whether ``entry``, at the top of an output folder, is the medium's and no reason to
    refuse that folder: an empty (or not listable) ``lost+found``, or what macOS or Windows
    adds to a medium (recognised by :func:`airgap.bundle.medium.recognise`)."""
    if entry.name != LOST_AND_FOUND:
        return medium.recognise(entry, top=True) is not None
    found = lost_and_found(entry.parent)
    return found is not None and not found.names


@dataclass(frozen=True)
class Odd:
    """A directory entry that is not a regular file: never read, never followed."""

    path: str
    kind: str
    message: str


@dataclass
class Scan:
    """Every entry below a bundle: its regular files, the entries that are not, and what a
    medium's system added (in neither)."""

    regular: set[str] = field(default_factory=set)
    odd: list[Odd] = field(default_factory=list)
    lost: LostAndFound | None = None
    medium: MediumFiles = field(default_factory=MediumFiles)

    @property
    def entries(self) -> set[str]:
        """Every path found that is not a directory (regular or not)."""
        return self.regular | {o.path for o in self.odd}


def scan(root: Path, *, skip: frozenset[str] = frozenset(), top: bool = True) -> Scan:
    """Walk ``root`` without following symbolic links (to files or directories); the
    entries of ``root`` named in ``skip`` are left out, and its ``lost+found`` folder is
    looked into apart (``Scan.lost``). What a medium's system adds is set apart
    (``Scan.medium``): its folders only when ``root`` is the top of a bundle or a volume
    (``top``), and they are not walked."""
    found = Scan(lost=lost_and_found(root) if top else None)
    if found.lost is not None:
        skip = skip | {LOST_AND_FOUND}
    added: dict[str, list[str]] = {}

    def unreadable(error: OSError) -> None:
        name = Path(str(error.filename or root))
        where = name.relative_to(root).as_posix() if name != root else "."
        found.odd.append(Odd(where, "unreadable", f"cannot be listed: {error.strerror}"))

    for folder, directories, files in os.walk(root, onerror=unreadable, followlinks=False):
        base = Path(folder)
        if base == root:
            directories[:] = [d for d in directories if d not in skip]
            files = [f for f in files if f not in skip]
            if top:  # a medium's folders: recognised, never walked
                for name in [d for d in directories if d in medium.MEDIUM_FOLDERS]:
                    if medium.recognise(root / name, top=True) is not None:
                        added.setdefault(medium.FOLDER, []).append(name)
                        directories.remove(name)
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
                kind = medium.recognise(path, top=False) if medium.named_like(name) else None
                if kind is None:
                    found.regular.add(relative)
                else:
                    added.setdefault(kind, []).append(relative)
            elif not stat.S_ISDIR(mode):
                found.odd.append(Odd(relative, "unreadable", "not a regular file (a FIFO, "
                                                             "socket or device): not read"))
    found.medium = medium.sorted_out(added)
    return found


def _target(path: Path) -> str:
    try:
        return repr(str(path.readlink()))
    except OSError:
        return "an unreadable target"
