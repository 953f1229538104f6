"""The lock a fetch holds on the bundle it writes."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path
from types import TracebackType

from airgap.bundle.layout import LOCK
from airgap.errors import BundleError, DamagedBundleError

#: Never block on opening (a FIFO would wait for a writer for ever), never follow a link.
_NEVER_WAIT = os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_lock(path: Path, flags: int) -> int:
    """Open the lock file without blocking or following a link; refuse anything that is
    not a regular file (a FIFO, a device, a link a fetch never makes) as damage."""
    try:
        fd = os.open(path, flags | _NEVER_WAIT, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise _not_a_lock(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_a_lock(path)
    os.set_blocking(fd, True)
    return fd


def _not_a_lock(path: Path) -> DamagedBundleError:
    return DamagedBundleError(
        f"{path}: not a regular file (a FIFO, device, folder or link): airgap only ever "
        "makes a plain file there, so the bundle was altered",
        details=[f"remove {path.name} if no airgap is running, then check the bundle with "
                 "airgap verify"])


class BundleLock:
    """Holds ``BUNDLE/.airgap.lock`` while a fetch writes the bundle.

    An advisory ``flock``: the kernel releases it when the process ends, however it ends,
    so a lock left by a killed run never blocks the next one. The file itself is removed
    only when the fetch succeeds: while it is there, the folder is a bundle in the making.
    A run that fails before it wrote anything but its lock (a manifest's typo found by
    the check of the sources) takes the lock away again, and the folders it made.
    """

    def __init__(self, bundle: Path) -> None:
        self.path = bundle / LOCK
        self._fd: int | None = None
        self._made: Path | None = None  # the outermost folder this lock had to make
        self._found = False

    def __enter__(self) -> BundleLock:
        missing = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._made = missing[-1] if missing else None
        self._found = self.path.exists()  # a lock an earlier run left: its files are here
        fd = _open_lock(self.path, os.O_RDWR | os.O_CREAT)
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
            if kind is None or (not self._found and _only_lock(self.path.parent)):
                with contextlib.suppress(OSError):
                    self.path.unlink()
                if kind is not None:
                    _remove_empty(self.path.parent, self._made)
            os.close(self._fd)
            self._fd = None


def _only_lock(bundle: Path) -> bool:
    """Whether ``bundle`` holds no file but its lock (folders, empty, it may)."""
    try:
        for folder, _, files in os.walk(bundle):
            if any(Path(folder, name) != bundle / LOCK for name in files):
                return False
    except OSError:
        return False
    return True


def _remove_empty(bundle: Path, made: Path | None) -> None:
    """Remove the empty folders in ``bundle``, then, when this run made it, it and its
    parents up to ``made``: what a run made and left nothing in."""
    for walked, _, _ in os.walk(bundle, topdown=False):
        if Path(walked) != bundle:
            with contextlib.suppress(OSError):
                Path(walked).rmdir()  # fails, and keeps it, unless it is empty
    if made is None:
        return
    for folder in (bundle, *bundle.parents):
        if not folder.is_relative_to(made):
            break
        with contextlib.suppress(OSError):
            folder.rmdir()


def writer(bundle: Path) -> str | None:
    """The pid of the fetch that holds ``bundle``'s lock now, or None when nobody does."""
    try:
        fd = _open_lock(bundle / LOCK, os.O_RDONLY)
    except OSError:  # not there, or not ours to read: nobody we could wait for
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def refuse_while_written(bundle: Path) -> None:
    """Raise :class:`BundleBusy` while a fetch writes ``bundle``."""
    pid = writer(bundle)
    if pid is not None:
        raise BundleBusy(f"{bundle}: a fetch (pid {pid}) is writing it",
                         details=["wait for it to finish, or stop it, then run this again"])


class BundleBusy(BundleError):
    """A fetch holds the bundle: nothing else may read it as a whole meanwhile."""
