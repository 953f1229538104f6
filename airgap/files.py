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
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

PART = ".part"


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
