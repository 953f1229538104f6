"""Files written whole or not at all: a reader sees the old content or the new, never part.

Every file airgap writes, except a download (which keeps a fixed ``.part`` name so that
a re-run resumes it, under the bundle lock), goes through :func:`atomic_output`: the
bytes go to a new file in the target's own folder (a rename never crosses file
systems), named ``.<name>.<pid>.<random>.part`` so that two writers never share one
and a later run can tell a dead process's leftovers (:func:`remove_dead_leftovers`); the
file reaches the disk before it is renamed over the target, and the folder after; on any
failure it is removed.

Files airgap is given to read (a manifest, a key, a certificate) are read with
:func:`read_regular`: anything that is not a regular file is refused at once (a FIFO
would block the read for ever, a device never end), and so is a file past its size limit.
Copies go through :func:`clone_or_copy`: a reflink where the file system has them, a
plain copy otherwise, never a hard link.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

PART = ".part"
# linux/fs.h: _IOW(0x94, 9, int), "make the destination share the source's extents".
_FICLONE = 0x40049409
#: What a file system says when it cannot link or clone across these two files.
_CANNOT_SHARE = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP,
                           errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.ENOSYS,
                           errno.EBADF})
# What a temporary name looks like: .<name>.<pid>.<8 hex digits>.part
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.part\Z")


#: What a write to a full or failing disk raises, without naming the file written.
DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


def naming(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` as its file, when it is a disk error that names none (a
    write's), so that the message says which file could not be written."""
    if exc.filename is None and exc.errno in DISK_ERRORS:
        return OSError(exc.errno, exc.strerror, str(path))
    return exc


class NotRegularFileError(OSError):
    """A path that must name a regular file names a FIFO, a device, a socket or a folder."""


class FileTooLargeError(OSError):
    """A file is larger than what may be read of it."""


def check_regular(path: Path) -> None:
    """Raise :class:`NotRegularFileError` unless ``path`` is (or links to) a regular file;
    :class:`FileNotFoundError` (an ``OSError``) when nothing is there."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(errno.EINVAL, f"not a regular file ({_what(mode)})", str(path))


def _what(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Opened without blocking, so that a FIFO is refused at once rather than waited on;
    :class:`NotRegularFileError` for anything but a regular file, :class:`FileTooLargeError`
    past ``limit`` bytes, any other ``OSError`` as the system gives it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(errno.EINVAL, f"not a regular file ({_what(mode)})",
                                      str(path))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileTooLargeError(errno.EFBIG, f"larger than the {limit} bytes such a file may "
                                "have", str(path))
    return data


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
def atomic_output(target: Path, mode: int | None = None, *,
                  sync_folder: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write ``target``'s new content into; it replaces ``target`` when
    the block ends without an exception, with permissions ``mode`` (default: as any new
    file, 0666 less the umask). ``sync_folder=False`` leaves the folder's fsync to the
    caller, who writes many files into one folder and syncs it once before anything
    trusts them (the file's own bytes still reach the disk before the rename)."""
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
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        error = naming(exc, target)
        if error is exc:
            raise
        raise error from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if sync_folder:
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


def clone_or_copy(source: Path, target: Path) -> bool:
    """Replace ``target`` with a file of ``source``'s bytes, atomically: a reflink where
    the file system has them, else a plain copy. Never a hard link: the two stay separate
    files. True when it was a reflink."""
    if reflink_atomically(source, target):
        return True
    copy_atomically(source, target)
    return False


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
def remove_if_shared(path: Path) -> bool:
    """Remove ``path`` if writing to it could change a file elsewhere: a symbolic link (the
    link goes, never its target), anything that is not a regular file, or a file with
    other hard links. True when it was removed; nothing there is not an error."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISREG(found.st_mode) and found.st_nlink == 1:
        return False
    if stat.S_ISDIR(found.st_mode):
        raise NotRegularFileError(errno.EISDIR, "a directory where a file must be", str(path))
    path.unlink()
    return True


def process_is_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (another user's counts: it cannot be signalled)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_dead_leftover(name: str) -> bool:
    """Whether ``name`` is a temporary name (:func:`temporary_name`) of a process that is
    gone: a write a ``kill -9`` or a crash interrupted."""
    found = _TEMPORARY.match(name)
    return found is not None and int(found.group(1)) != os.getpid() and \
        not process_is_alive(int(found.group(1)))


def remove_dead_leftovers(folder: Path, *, name: str | None = None,
                          recursive: bool = False) -> list[Path]:
    """Remove the temporary files dead processes left in ``folder`` (and below it when
    ``recursive``), only those of a file called ``name`` if given; return what was
    removed. A live process's, and another user's, are never touched."""
    removed = []
    pattern = f".{glob.escape(name)}.*.part" if name else ".*.part"
    with contextlib.suppress(OSError):
        for path in folder.glob(f"**/{pattern}" if recursive else pattern):
            if is_dead_leftover(path.name) and not path.is_symlink() and path.is_file() \
                    and path.stat().st_uid == os.getuid():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed
