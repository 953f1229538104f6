"""Media with real limits for the tests: a size-capped tmpfs (no reflinks), and a btrfs
file system in a sparse file (reflinks), mounted and unmounted by the test that asks for
it (root only)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import require_programs, require_root


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes at ``mountpoint`` (a file system with no reflinks, and
    another than the test's own), unmounted when the block ends."""
    require_root("mounting a tmpfs")
    require_programs("mount", "umount")
    mountpoint.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint))
    try:
        yield mountpoint
    finally:
        _run("umount", str(mountpoint))


def used(mountpoint: Path) -> int:
    """Bytes the file system at ``mountpoint`` has in use."""
    out = _run("df", "--block-size=1", "--output=used", str(mountpoint))
    return int(out.split()[-1])


@contextlib.contextmanager
def btrfs(mountpoint: Path, size: int = 256 << 20) -> Iterator[Path]:
    """A btrfs file system of ``size`` bytes at ``mountpoint``, a file system that clones
    (reflinks), in a sparse image file beside it; loop-mounted, unmounted and removed when
    the block ends (``mount -o loop`` detaches its loop device on unmount)."""
    require_root("mounting a btrfs image")
    require_programs("mount", "umount", "mkfs.btrfs")
    image = mountpoint.with_name(f"{mountpoint.name}.img")
    with image.open("wb") as sparse:
        sparse.truncate(size)
    _run("mkfs.btrfs", "-q", str(image))
    mountpoint.mkdir(parents=True, exist_ok=True)
    _run("mount", "-o", "loop", str(image), str(mountpoint))
    try:
        yield mountpoint
    finally:
        _run("umount", str(mountpoint))
        image.unlink()


def shares_blocks(path: Path) -> bool:
    """Whether every extent of ``path`` is shared with another file (a clone's are, a
    copy's are not): FIEMAP's shared flag, as ``filefrag -v`` prints it."""
    require_programs("filefrag")
    out = _run("filefrag", "-v", str(path))
    extents = [row for row in out.splitlines() if row.strip()[:1].isdigit()]
    return bool(extents) and all("shared" in row for row in extents)


def _run(*command: str) -> str:
    """Run ``command``; what it printed (it must succeed)."""
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout
