"""Files written whole or not at all: a reader sees the old content or the new, never part.

Every file airgap writes, except a download (which keeps a fixed ``.part`` name so that
a re-run resumes it, under the bundle lock), goes through :func:`atomic_output`: the
bytes go to a new file in the target's own folder (a rename never crosses file
systems), named ``.<name>.<pid>.<random>.part`` so that two writers never share one
and a later run can tell a dead process's leftovers; the file reaches the disk before
it is renamed over the target, and the folder after; on any failure it is removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

PART = ".part"
_FICLONE = 0x40049409  # linux/fs.h: share the source's extents (btrfs, XFS, ...)
#: What a file system says when it cannot link or clone across these two files.
_CANNOT_SHARE = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP,
                           errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.ENOSYS})


def temporary_name(target: Path) -> Path:
    """A new temporary name beside ``target`` that only this process uses."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{PART}")


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (file systems that cannot: nothing to do)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(target: Path, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary file to write ``target``'s new content into; it replaces ``target`` when
    the block ends without an exception, with permissions ``mode`` (default: as any new
    file, 0666 less the umask)."""
    while True:
        temporary = temporary_name(target)
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o666 if mode is None else 0o600)
            break
        except FileExistsError:  # pragma: no cover - 32 random bits taken already
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            temporary.chmod(mode)
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(target.parent)


def atomic_write(target: Path, data: bytes | str, mode: int | None = None) -> None:
    """Replace ``target`` with ``data`` (text is written as UTF-8), atomically."""
    with atomic_output(target, mode) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def copy_atomically(source: Path, target: Path, chunk: int = 1 << 20) -> None:
    """Replace ``target`` with a copy of ``source``'s bytes, atomically."""
    with source.open("rb") as reader, atomic_output(target) as writer:
        buffer = bytearray(chunk)
        view = memoryview(buffer)
        while count := reader.readinto(buffer):
            writer.write(view[:count])


def link_atomically(source: Path, target: Path) -> bool:
    """Hard-link ``source`` as ``target`` through a rename; False where the file system
    cannot link the two."""
    temporary = temporary_name(target)
    try:
        os.link(source, temporary)
    except OSError as exc:
        if exc.errno not in _CANNOT_SHARE:
            raise
        return False
    try:
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(target.parent)
    return True


def reflink_atomically(source: Path, target: Path) -> bool:
    """Make ``target`` a clone of ``source`` (a new file sharing its blocks until either
    changes), through a rename; False where the file system cannot clone."""
    try:
        with source.open("rb") as reader, atomic_output(target) as writer:
            try:
                fcntl.ioctl(writer.fileno(), _FICLONE, reader.fileno())
            except OSError as exc:
                if exc.errno not in _CANNOT_SHARE:
                    raise
                raise _NoClone from None
    except _NoClone:
        return False
    return True


class _NoClone(Exception):
    """The file system cannot clone: the temporary file goes, a link or copy follows."""


def share_or_copy(source: Path, target: Path) -> str:
    """Put ``source``'s bytes at ``target`` the cheapest way the file system allows, never
    changing ``source``: a clone, else a hard link, else a copy. Returns which it was."""
    if reflink_atomically(source, target):
        return "reflink"
    if link_atomically(source, target):
        return "link"
    copy_atomically(source, target)
    return "copy"


@dataclass(frozen=True)
class FileSystem:
    """The file system a path is on: where it is mounted, from what, and its free space."""

    mount_point: str
    source: str
    free: int

    def __str__(self) -> str:
        return f"{self.source} mounted at {self.mount_point}"


def file_system(path: Path) -> FileSystem:
    """The file system ``path`` (or, when it does not exist yet, its nearest existing
    parent) is on, with the bytes an unprivileged writer may still use there."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    info = os.statvfs(existing)
    mount, source = str(existing), "?"
    resolved = str(existing.resolve())
    with contextlib.suppress(OSError):
        best = ""
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            # ... mount-id parent major:minor root mount-point options ... - type source ...
            point = fields[4].replace("\\040", " ")
            inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best = point
                after = fields.index("-")
                mount, source = point, fields[after + 2]
    return FileSystem(mount, source, info.f_bavail * info.f_frsize)
