"""Volumes: how a bundle's files are packed into volumes of a given size, and one volume
as it is found on a medium.

A volume holds at most its size in bytes, everything included (its pieces, the index
and its signature), each file counted in whole blocks of the medium's file system
(``block``, 4 KiB unless told): whole files are packed, biggest first, into the first
volume with room; a file larger than a volume (or than ``max_file``, FAT32's 4 GiB - 1
byte) is cut into pieces that fill a volume each, the rest packed like any file.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airgap.bundle.medium import MediumFiles
from airgap.bundle.scan import LostAndFound, Odd, scan
from airgap.carry.index import (
    INDEX,
    INDEX_SIGNATURE,
    MAX_INDEX,
    MAX_VOLUMES,
    DamagedIndexError,
    Piece,
    VolumeIndex,
)
from airgap.errors import BundleError, SignatureError, UsageError, setting
from airgap.trust.digests import CHUNK, Hasher
from airgap.trust.gpg import Verifier

BLOCK = 4096
PLACEHOLDER = "0" * 128  # a piece's SHA-512 before it is written: the index's size is known
_MAX_PIECES = 999_999
_EXTRAS_SHOWN = 20
_TRUST = setting("trust_keys")
# Never through a link; never blocking on a FIFO a medium may hold instead of a file.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def blocks(size: int, block: int) -> int:
    """The bytes ``size`` bytes take on a file system allocating ``block`` at a time."""
    return -(-size // block) * block


@dataclass(frozen=True)
class Limits:
    """What the medium takes: bytes per volume, its allocation unit, bytes per file."""

    size: int
    block: int = BLOCK
    max_file: int | None = None


def pack(files: Sequence[tuple[str, int]], limits: Limits, reserve: int) -> list[Piece]:
    """Pieces for ``files`` (path, size), in volumes of ``limits.size`` of which
    ``reserve`` bytes are kept for the index and its signature; named in volume order."""
    block = limits.block
    capacity = limits.size // block * block - reserve
    if capacity < block:
        raise UsageError(f"{setting('size')} {limits.size} is too small: the index alone "
                         f"takes {reserve} bytes of each volume")
    largest = capacity if limits.max_file is None else min(capacity, limits.max_file)
    if largest >= block:
        largest = largest // block * block  # pieces end on a block, wasting nothing
    chunks: list[tuple[str, int, int]] = []
    for path, size in files:
        if size <= largest:
            chunks.append((path, 0, size))
        else:
            chunks.extend((path, offset, min(largest, size - offset))
                          for offset in range(0, size, largest))
    if len(chunks) > _MAX_PIECES:
        raise UsageError(f"{len(chunks)} pieces: more than the {_MAX_PIECES} a split can "
                         f"name; give a larger {setting('size')}")
    room: list[int] = []
    volume_of: dict[tuple[str, int, int], int] = {}
    for chunk in sorted(chunks, key=lambda c: (-blocks(c[2], block), c[0], c[1])):
        need = blocks(chunk[2], block)
        number = next((n for n, free in enumerate(room) if free >= need), None)
        if number is None:
            room.append(capacity)
            number = len(room) - 1
        room[number] -= need
        volume_of[chunk] = number + 1
    if len(room) > MAX_VOLUMES:
        raise UsageError(f"{len(room)} volumes: more than {MAX_VOLUMES}; give a larger "
                         f"{setting('size')}")
    ordered = sorted(chunks, key=lambda c: (volume_of[c], c[0], c[1]))
    return [Piece(f"{number:06d}", volume_of[c], c[0], c[1], c[2], PLACEHOLDER)
            for number, c in enumerate(ordered, 1)]


@dataclass(frozen=True)
class FoundVolume:
    """One volume as found: its index (checked), which volume it is, what it holds."""

    folder: Path
    data: bytes
    index: VolumeIndex
    number: int
    signature: str  # "valid", "absent", or "present, not checked (...)"
    present: frozenset[str]
    odd: tuple[Odd, ...]
    lost: LostAndFound | None = None
    medium: MediumFiles = field(default_factory=MediumFiles)

    @property
    def expected(self) -> tuple[Piece, ...]:
        """The pieces the index puts in this volume."""
        return self.index.of_volume(self.number)

    @property
    def shown(self) -> str:
        """``volume 2 of 5``."""
        return f"volume {self.number} of {self.index.volumes}"


def lost_and_found_said(volume: FoundVolume) -> tuple[Odd | None, str | None]:
    """The volume's ``lost+found`` folder: the damage it shows when fsck put files in it,
    or the warning that an empty one (the medium's) is ignored; (None, None) without one."""
    if volume.lost is None:
        return None, None
    return volume.lost.problem(), volume.lost.warning(volume.folder)


def extras_warnings(volume: FoundVolume) -> list[str]:
    """The warnings naming what ``volume`` holds besides its pieces and index, which is
    never read: what a medium's system adds, recognised (as a bundle's check says it), and
    anything else."""
    said = volume.medium.warnings(volume.folder)
    names = {p.name for p in volume.expected} | {INDEX, INDEX_SIGNATURE}
    extras = sorted((volume.present | {odd.path for odd in volume.odd}) - names)
    if not extras:
        return said
    shown = ", ".join(extras[:_EXTRAS_SHOWN]) + (
        f" and {len(extras) - _EXTRAS_SHOWN} more" if len(extras) > _EXTRAS_SHOWN else "")
    return [*said, f"{volume.folder} ({volume.shown}) holds {len(extras)} file(s) that are "
            f"not its pieces, ignored (added after the split): {shown}"]


def open_volume(folder: Path, trust_keys: Sequence[Path]) -> FoundVolume:
    """Read the volume at ``folder``: its index, signed by a ``trust_keys`` key when they
    are given, and the volume number its pieces give. Raises what makes it unusable."""
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder")
    if not (folder / INDEX).exists() and (held := _volumes_inside(folder)):
        raise UsageError(f"{folder} is not a volume: it holds {len(held)} volumes "
                         f"({', '.join(held[:3])}{', ...' if len(held) > 3 else ''})",
                         details=[f"give the volumes themselves: {folder}/*"])
    data = _read_small(folder / INDEX, f"{folder} is not an airgap volume: it has no {INDEX}")
    try:
        index = VolumeIndex.from_bytes(data, str(folder / INDEX))
    except DamagedIndexError as exc:
        raise DamagedIndexError(exc.message, details=[
            *exc.details, f"the volume {folder} is damaged: send it again (nothing of it "
            "was used)"]) from None
    signature = _check_signature(folder, data, trust_keys)
    found = scan(folder)
    by_name = index.by_name()
    numbers = sorted({by_name[name].volume for name in found.regular if name in by_name})
    if not numbers:
        raise DamagedIndexError(f"{folder} holds none of the pieces its index lists: it is "
                                "not a volume of that bundle, or its pieces were removed")
    if len(numbers) > 1:
        raise DamagedIndexError(f"{folder} holds pieces of volumes "
                                f"{', '.join(map(str, numbers))} of its set: keep each "
                                "volume in a folder (or a medium) of its own")
    return FoundVolume(folder, data, index, numbers[0], signature, frozenset(found.regular),
                       tuple(found.odd), found.lost, found.medium)


def _volumes_inside(folder: Path) -> list[str]:
    """The names of the volumes right below ``folder`` (a split's output), if any."""
    try:
        return sorted(entry.name for entry in folder.iterdir()
                      if entry.is_dir() and not entry.is_symlink()
                      and (entry / INDEX).is_file())
    except OSError:
        return []


def _read_small(path: Path, missing: str) -> bytes:
    """A small regular file, never through a link."""
    try:
        fd = os.open(path, _READ)
    except FileNotFoundError:
        raise BundleError(missing) from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read ({exc.strerror}); a link is never "
                          "followed") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_INDEX:
            raise DamagedIndexError(f"{path}: not a regular file of at most {MAX_INDEX} bytes")
        return handle.read(MAX_INDEX + 1)


def _check_signature(folder: Path, data: bytes, trust_keys: Sequence[Path]) -> str:
    """The index's signature, checked over the very bytes read (a medium can change
    between two reads) when ``trust_keys`` are given."""
    path = folder / INDEX_SIGNATURE
    present = path.is_file() and not path.is_symlink()
    if not trust_keys:
        return f"present, not checked (give {_TRUST})" if present else "absent"
    if not present:
        raise SignatureError(f"{folder}: {_TRUST} was given but the volume has no "
                             f"{INDEX_SIGNATURE}: its index cannot be shown to be yours")
    signature = _read_small(path, f"{path} is missing")
    with tempfile.TemporaryDirectory(prefix="airgap-volume-") as scratch, \
            Verifier(trust_keys, include_elastic=False, untrusted_fix=(
                f"give {_TRUST} with the public key that signed {INDEX_SIGNATURE}")) as verifier:
        copy, copy_signature = Path(scratch) / INDEX, Path(scratch) / INDEX_SIGNATURE
        copy.write_bytes(data)
        copy_signature.write_bytes(signature)
        verifier.verify(copy, copy_signature, name=f"{folder / INDEX}")
    return "valid"


def copy_piece(folder: Path, piece: Piece, out: int | None, stop: threading.Event,
               progress: Callable[[int], None], whole: Hasher | None = None) -> str | None:
    """Read ``piece`` from the volume at ``folder`` (never through a link), hashing it,
    and write it at its offset to the open file ``out`` when given; return what is wrong
    with it, or None when it is intact.

    ``whole``, the hasher of the piece's file fed every earlier piece in order, is fed
    this one's bytes from the same buffer; while it has seen nothing (the file's first
    piece), its hash is the piece's too, so those bytes are hashed once."""
    try:
        fd = os.open(folder / piece.name, _READ)
    except FileNotFoundError:
        return "missing from the volume"
    except OSError as exc:
        return f"cannot be read: {exc.strerror} (a link is never followed)"
    hasher = whole if whole is not None and whole.size == 0 else Hasher(sha256=False)
    shared = hasher is whole
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size != piece.size:
            return f"holds {info.st_size} bytes, the index says {piece.size}"
        position = piece.offset
        while True:
            try:
                count = handle.readinto(buffer)
            except OSError as exc:  # a scratched disc: the piece, not the run, fails
                return f"cannot be read: {exc.strerror}"
            if not count:
                break
            if stop.is_set():
                raise KeyboardInterrupt
            if hasher.size + count > piece.size:
                return "grew while it was read"
            hasher.update(view[:count])
            if whole is not None and not shared:
                whole.update(view[:count])
            if out is not None:
                _write_at(out, view[:count], position)
            position += count
            progress(count)
    digests = hasher.digests()
    if digests.size != piece.size:
        return f"holds {digests.size} bytes, the index says {piece.size}"
    if digests.sha512 != piece.sha512:
        return "its SHA-512 differs from the index: the piece is damaged"
    return None


def _write_at(fd: int, data: memoryview, position: int) -> None:
    while data:
        written = os.pwrite(fd, data, position)
        data, position = data[written:], position + written
