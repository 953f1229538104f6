"""The volume index: read with every field checked, a hostile one refused, a damaged one
known as damaged by its own SHA-512 (no key needed)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from airgap.carry.index import INDEX, DamagedIndexError, VolumeIndex
from tests.terminal import in_pipe, unstamped


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


def sealed(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the SHA-512 of its canonical form (docs/bundle.md) added."""
    content = {k: v for k, v in document.items() if k != "index_sha512"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return {**content, "index_sha512": hashlib.sha512(canonical.encode()).hexdigest()}


def parse(document: dict[str, Any]) -> VolumeIndex:
    return VolumeIndex.from_bytes(json.dumps(sealed(document)).encode(),
                                  "v/airgap-volume.json")


def test_an_index_reads_back_as_written() -> None:
    read = parse(index())
    assert VolumeIndex.from_bytes(read.to_bytes(), "again") == read
    assert [p.name for p in read.of_volume(2)] == ["000002", "000003"]
    assert read.files()["images/blob"][1].describe() == "images/blob (bytes 5-9)"
    assert read.identity == sealed(index())["index_sha512"]
    assert parse(index(created="2026-12-02T00:00:00Z")).identity != read.identity


@pytest.mark.parametrize("field", ["created", "bundle", "volume_size", "index_sha512"])
def test_a_bit_flipped_anywhere_in_the_index_is_damage(field: str) -> None:
    data = bytearray(parse(index()).to_bytes())
    # One bit of a digit (or an "a") past the value's first character: still valid JSON,
    # still of the field's form; only the index's own SHA-512 can tell.
    at = data.index(f'"{field}": '.encode()) + len(field) + 5
    while not (chr(data[at]).isdigit() or data[at] == ord("a")):
        at += 1
    data[at] ^= 0x01 if chr(data[at]).isdigit() else 0x02
    with pytest.raises(DamagedIndexError, match="is damaged: its content differs from the "
                                                "SHA-512 it records"):
        VolumeIndex.from_bytes(bytes(data), "v/airgap-volume.json")


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


def test_a_deeply_nested_index_is_damage_of_that_volume_not_a_traceback(
        golden_volumes: Path, tmp_path: Path) -> None:
    folders = sorted(shutil.copytree(p, tmp_path / p.name)
                     for p in golden_volumes.iterdir() if p.is_dir())
    # Valid JSON nested deeper than Python's parser recurses.
    (folders[1] / INDEX).write_bytes(b"[" * 100_000 + b"]" * 100_000)
    joined = tmp_path / "joined"
    for command in (("verify", str(folders[1])),
                    ("join", *map(str, folders), "-o", str(joined))):
        done = in_pipe(*command)
        assert done.returncode == 3, done.stderr
        assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
        assert unstamped(done.stderr)[:2] == [
            f"error: {folders[1] / INDEX}: not an airgap volume index: nested deeper than "
            "the 64 levels it may have",
            f"  the volume {folders[1]} is damaged: send it again (nothing of it was used)"]
    assert not joined.exists()
