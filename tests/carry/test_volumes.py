"""How files are packed into volumes: whole, biggest first, in whole blocks, cut only when
they must be."""

from __future__ import annotations

import pytest

from airgap.carry.index import Piece
from airgap.carry.volumes import Limits, blocks, pack
from airgap.errors import UsageError

KIB = 1024


def volumes(pieces: list[Piece]) -> dict[int, list[Piece]]:
    found: dict[int, list[Piece]] = {}
    for piece in pieces:
        found.setdefault(piece.volume, []).append(piece)
    return found


def test_whole_files_are_packed_and_only_larger_ones_cut() -> None:
    files = [("a", 300 * KIB), ("b", 300 * KIB), ("c", 100 * KIB), ("big", 1500 * KIB),
             ("empty", 0)]
    pieces = pack(files, Limits(size=512 * KIB), reserve=8 * KIB)
    by_file: dict[str, list[Piece]] = {}
    for piece in pieces:
        by_file.setdefault(piece.file, []).append(piece)
    assert [len(by_file[name]) for name in ("a", "b", "c", "empty")] == [1, 1, 1, 1]
    assert len(by_file["big"]) == 3 and sum(p.size for p in by_file["big"]) == 1500 * KIB
    for number, held in volumes(pieces).items():
        assert sum(blocks(p.size, 4096) for p in held) <= 512 * KIB - 8 * KIB, number
    assert [p.name for p in pieces] == [f"{n:06d}" for n in range(1, len(pieces) + 1)]
    assert [p.volume for p in pieces] == sorted(p.volume for p in pieces)


def test_max_file_cuts_files_a_volume_would_hold() -> None:
    pieces = pack([("layer", 10_000_000)], Limits(size=25_000_000, max_file=4_000_000),
                  reserve=4096)
    assert all(p.size <= 4_000_000 for p in pieces)
    assert all(p.size % 4096 == 0 for p in pieces[:-1])
    assert len(volumes(pieces)) == 1


def test_blocks_count_what_the_medium_allocates() -> None:
    # Ten files of one byte take ten blocks: 40 KiB of a 32 KiB volume does not fit.
    pieces = pack([(f"f{i}", 1) for i in range(10)], Limits(size=32 * KIB), reserve=4096)
    assert len(volumes(pieces)) == 2
    one_byte = pack([(f"f{i}", 1) for i in range(10)], Limits(size=32 * KIB, block=1),
                    reserve=4096)
    assert len(volumes(one_byte)) == 1


def test_a_volume_too_small_for_its_index_is_refused() -> None:
    with pytest.raises(UsageError, match="too small: the index alone"):
        pack([("a", 10)], Limits(size=8 * KIB), reserve=8 * KIB)
