"""How files are packed into volumes, and what a volume index may say."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airgap.carry.index import DamagedIndexError, Piece, VolumeIndex
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


def index(**change: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": 1, "kind": "airgap-volumes", "bundle": "a" * 128, "delta_of": None,
        "created": "2026-12-01T00:00:00Z", "volumes": 2, "volume_size": 1 << 20,
        "block": 4096, "max_file": None,
        "pieces": [
            {"name": "000001", "volume": 1, "file": "SHA512SUMS", "offset": 0, "size": 10,
             "sha512": "b" * 128},
            {"name": "000002", "volume": 2, "file": "images/blob", "offset": 0, "size": 5,
             "sha512": "c" * 128},
            {"name": "000003", "volume": 2, "file": "images/blob", "offset": 5, "size": 5,
             "sha512": "d" * 128}]}
    document.update(change)
    return document


def parse(document: dict[str, Any]) -> VolumeIndex:
    return VolumeIndex.from_bytes(json.dumps(document).encode(), "v/airgap-volume.json")


def test_an_index_reads_back_as_written() -> None:
    read = parse(index())
    assert VolumeIndex.from_bytes(read.to_bytes(), "again") == read
    assert [p.name for p in read.of_volume(2)] == ["000002", "000003"]
    assert read.files()["images/blob"][1].describe() == "images/blob (bytes 5-9)"


@pytest.mark.parametrize("path", ["../../etc/cron.d/x", "/etc/passwd", "images/./blob",
                                  ".airgap-join/index.json", ".airgap.lock", "a\\b"])
def test_a_piece_may_not_name_a_file_outside_the_bundle(path: str) -> None:
    document = index()
    document["pieces"][1]["file"] = path
    document["pieces"][2]["file"] = path
    with pytest.raises(DamagedIndexError, match="not a path inside a bundle"):
        parse(document)


@pytest.mark.parametrize(("change", "message"), [
    ({"format": 2}, "not an airgap volume index of format 1"),
    ({"extra": 1}, "'extra' is not a field"),
    ({"volumes": 3}, "volume 3 holds no piece"),
    ({"volumes": 0}, "volumes is not a number"),
    ({"bundle": "x"}, "bundle is not a SHA-512"),
])
def test_a_damaged_index_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(DamagedIndexError, match=message):
        parse(index(**change))


def test_pieces_must_tile_their_file() -> None:
    gap = index()
    gap["pieces"][2]["offset"] = 6
    with pytest.raises(DamagedIndexError, match="do not follow each other"):
        parse(gap)
    twice = index()
    twice["pieces"][2]["name"] = "000002"
    with pytest.raises(DamagedIndexError, match="listed twice"):
        parse(twice)
    elsewhere = index()
    elsewhere["pieces"][1]["volume"] = 7
    with pytest.raises(DamagedIndexError, match="volume is not a number from 1 to 2"):
        parse(elsewhere)
