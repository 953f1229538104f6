"""What macOS and Windows add to a medium, recognised by name and by content, so that a
bundle carried on one is no less intact for it.

macOS's Finder writes an AppleDouble file ``._NAME`` beside every file it copies onto a
FAT32 or exFAT medium (the extended attributes those file systems cannot hold) and a
``.DS_Store`` in the folders it shows; at the top of a medium, macOS keeps
``.Spotlight-V100``, ``.fseventsd``, ``.Trashes`` and ``.TemporaryItems``, Windows
``System Volume Information`` and ``$RECYCLE.BIN``. Each is recognised only when it is
what it says: an AppleDouble file is a regular file of at most :data:`MAX_SIZE` bytes
holding the AppleDouble header (magic ``0x00051607``, version 1 or 2, its entries within
the file), a ``.DS_Store`` a regular file as small starting with ``00 00 00 01 Bud1``, a
medium's folder a directory right at the top. Only the header is read, never through a
link; nothing else ever reads them. A file of such a name that is not what it says is
no medium's: it stays a problem like any file added to a bundle (it may be a payload in
disguise).
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: A ``._NAME`` file is its companion's extended attributes: small (4 KiB as Finder
#: writes it, more with a resource fork). Larger ones are not taken for one.
MAX_SIZE = 1 << 20
APPLE_DOUBLE_PREFIX = "._"
DS_STORE = ".DS_Store"
#: The folders macOS and Windows keep at the top of a medium.
MEDIUM_FOLDERS = frozenset({".Spotlight-V100", ".fseventsd", ".Trashes", ".TemporaryItems",
                            "System Volume Information", "$RECYCLE.BIN"})

_APPLE_DOUBLE_MAGIC = 0x00051607
_APPLE_DOUBLE_VERSIONS = (0x00010000, 0x00020000)
_APPLE_DOUBLE_HEADER = struct.Struct(">II16sH")  # magic, version, filler, entries
_APPLE_DOUBLE_ENTRY = struct.Struct(">III")  # id, offset, length
_DS_STORE_MAGIC = b"\x00\x00\x00\x01Bud1"
# Never through a link; never blocking on a FIFO that took the place of a file.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

APPLE_DOUBLE = "appledouble"
FINDER = "ds_store"
FOLDER = "medium_folder"


def named_like(relative: str) -> bool:
    """Whether a path below a bundle (or a served tree) has the name of something a medium's
    system adds, whatever it holds: such a path is never served nor laid out."""
    parts = PurePosixPath(relative).parts
    return bool(parts) and (parts[0] in MEDIUM_FOLDERS or any(
        part == DS_STORE or (part.startswith(APPLE_DOUBLE_PREFIX)
                             and len(part) > len(APPLE_DOUBLE_PREFIX)) for part in parts))


def recognise(path: Path, *, top: bool) -> str | None:
    """Which kind of a medium's file ``path`` is (:data:`APPLE_DOUBLE`, :data:`FINDER`,
    :data:`FOLDER`), or None when it is none, by its name and its content; ``top``: it lies
    right at the top of a bundle or a volume (where a medium's folders are)."""
    name = path.name
    if top and name in MEDIUM_FOLDERS:
        try:
            return FOLDER if stat.S_ISDIR(path.lstat().st_mode) else None
        except OSError:
            return None
    if name == DS_STORE:
        return FINDER if _starts(path, _DS_STORE_MAGIC) else None
    if name.startswith(APPLE_DOUBLE_PREFIX) and len(name) > len(APPLE_DOUBLE_PREFIX):
        return APPLE_DOUBLE if _apple_double(path) else None
    return None


def _open(path: Path) -> int | None:
    """``path`` opened for reading when it is a regular file of at most MAX_SIZE bytes."""
    try:
        fd = os.open(path, _READ)
    except OSError:
        return None
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_SIZE:
        return fd
    os.close(fd)
    return None


def _starts(path: Path, magic: bytes) -> bool:
    if (fd := _open(path)) is None:
        return False
    try:
        return os.pread(fd, len(magic), 0) == magic
    except OSError:
        return False
    finally:
        os.close(fd)


def _apple_double(path: Path) -> bool:
    """An AppleDouble header file: the header, and every entry it lists within the file."""
    if (fd := _open(path)) is None:
        return False
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, _APPLE_DOUBLE_HEADER.size, 0)
        if len(head) != _APPLE_DOUBLE_HEADER.size:
            return False
        magic, version, _filler, count = _APPLE_DOUBLE_HEADER.unpack(head)
        table = _APPLE_DOUBLE_HEADER.size + count * _APPLE_DOUBLE_ENTRY.size
        if magic != _APPLE_DOUBLE_MAGIC or version not in _APPLE_DOUBLE_VERSIONS \
                or table > size:
            return False
        entries = os.pread(fd, table - _APPLE_DOUBLE_HEADER.size, _APPLE_DOUBLE_HEADER.size)
        if len(entries) != table - _APPLE_DOUBLE_HEADER.size:
            return False
        return all(offset + length <= size for _id, offset, length
                   in _APPLE_DOUBLE_ENTRY.iter_unpack(entries))
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


@dataclass(frozen=True)
class MediumFiles:
    """What a medium's system added below a bundle or a volume, recognised (paths relative
    to it), by kind."""

    apple_double: tuple[str, ...] = ()
    finder: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()

    @property
    def paths(self) -> frozenset[str]:
        """Every path recognised."""
        return frozenset(self.apple_double + self.finder + self.folders)

    def warnings(self, where: Path) -> list[str]:
        """One line per kind found: how many, that they are ignored, how to remove them."""
        said = []
        if count := len(self.apple_double):
            said.append(f"{where}: {_files(count, 'AppleDouble file')} (._NAME) that macOS "
                        "writes beside files on FAT32 and exFAT media, ignored (never read): "
                        f"remove them with `dot_clean -m {where}` on macOS, or "
                        f"`find {where} -name '._*' -type f -delete`")
        if count := len(self.finder):
            said.append(f"{where}: {_files(count, '.DS_Store file')} of macOS's Finder, "
                        "ignored (never read): remove them with "
                        f"`find {where} -name .DS_Store -type f -delete`")
        if count := len(self.folders):
            said.append(f"{where}: {_files(count, 'folder')} macOS or Windows keeps at the "
                        f"top of a medium ({', '.join(sorted(self.folders))}), ignored "
                        "(never read): they are the medium's own")
        return said


def _files(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def sorted_out(found: dict[str, list[str]]) -> MediumFiles:
    """A :class:`MediumFiles` of the paths ``found`` by kind (as :func:`recognise` names
    them)."""
    return MediumFiles(tuple(sorted(found.get(APPLE_DOUBLE, []))),
                       tuple(sorted(found.get(FINDER, []))),
                       tuple(sorted(found.get(FOLDER, []))))
