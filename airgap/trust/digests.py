"""Hashing in one pass: sha512 for the bundle index, sha256 for OCI blobs, and the size."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


@dataclass(frozen=True)
class Digests:
    """What one pass over some bytes found: size, sha512, and sha256 when asked for."""

    size: int
    sha512: str
    sha256: str | None = None


class Hasher:
    """Feeds every chunk to sha512 (always) and sha256 (when wanted), counting bytes."""

    def __init__(self, sha256: bool) -> None:
        self._sha512 = hashlib.sha512()
        self._sha256 = hashlib.sha256() if sha256 else None
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        """Add ``chunk``; hashlib releases the GIL here, so threads hash in parallel."""
        self._sha512.update(chunk)
        if self._sha256 is not None:
            self._sha256.update(chunk)
        self.size += len(chunk)

    def digests(self) -> Digests:
        """The digests of everything fed so far."""
        return Digests(self.size, self._sha512.hexdigest(),
                       self._sha256.hexdigest() if self._sha256 is not None else None)


def hash_file(path: Path, *, sha256: bool = False, hasher: Hasher | None = None,
              progress: Callable[[int], None] | None = None) -> Digests:
    """Hash the file at ``path`` (continuing ``hasher`` when given) without holding it;
    ``progress`` hears of every chunk read."""
    hasher = hasher or Hasher(sha256)
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            hasher.update(view[:count])
            if progress is not None:
                progress(count)
    return hasher.digests()
