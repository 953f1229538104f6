"""Media with real limits for the carry tests: a size-capped tmpfs, mounted and
unmounted by the test that asks for it (root only)."""

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
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                    str(mountpoint)], check=True, capture_output=True, text=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True, capture_output=True,
                       text=True)


def used(mountpoint: Path) -> int:
    """Bytes the file system at ``mountpoint`` has in use."""
    out = subprocess.run(["df", "--block-size=1", "--output=used", str(mountpoint)],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1])
