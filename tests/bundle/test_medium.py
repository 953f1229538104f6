"""What macOS and Windows add to a medium: recognised by name and by content, never by name
alone, and set apart by the scan of a bundle (never walked, never taken for its files)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from airgap.bundle.medium import MAX_SIZE, MediumFiles, named_like, recognise
from airgap.bundle.scan import medium_folder, scan
from tests.medium import TOP_FOLDERS, add_mac_and_windows_files, apple_double, ds_store


def test_finders_files_are_recognised_by_their_content(tmp_path: Path) -> None:
    (tmp_path / "._agent.tar.gz").write_bytes(apple_double())
    (tmp_path / "._big").write_bytes(apple_double(MAX_SIZE))  # with a resource fork
    (tmp_path / ".DS_Store").write_bytes(ds_store())
    (tmp_path / ".Trashes").mkdir()
    assert recognise(tmp_path / "._agent.tar.gz", top=False) == "appledouble"
    assert recognise(tmp_path / "._big", top=False) == "appledouble"
    assert recognise(tmp_path / ".DS_Store", top=False) == "ds_store"
    assert recognise(tmp_path / ".Trashes", top=True) == "medium_folder"
    assert recognise(tmp_path / ".Trashes", top=False) is None  # only at the top


def _header(magic: int = 0x00051607, version: int = 0x00020000, entries: int = 1,
            offset: int = 38, length: int = 10) -> bytes:
    return struct.pack(">II16sH", magic, version, b"Mac OS X        ", entries) + \
        struct.pack(">III", 9, offset, length)


@pytest.mark.parametrize(("name", "data"), [
    ("._payload.zip", b"PK\3\4" + b"\0" * 4092),  # a zip named like one
    ("._single", _header(magic=0x00051600) + b"\0" * 10),  # AppleSingle, which holds data
    ("._version3", _header(version=0x00030000) + b"\0" * 10),
    ("._short", apple_double()[:20]),  # the header cut short
    ("._entries", _header(entries=400) + b"\0" * 10),  # a table past the end
    ("._outside", _header(offset=38, length=4096) + b"\0" * 10),  # an entry past the end
    ("._huge", apple_double(MAX_SIZE + 4096)),  # larger than such a file is
    ("._", apple_double()),  # no companion name
    (".DS_Store", b"\0\0\0\2Bud1" + b"\0" * 100),
    (".DS_Store", b"Bud1" + b"\0" * 100),
])
def test_a_file_of_such_a_name_holding_something_else_is_not_recognised(
        tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / name).write_bytes(data)
    assert recognise(tmp_path / name, top=False) is None
    found = scan(tmp_path)
    assert found.regular == {name} and not found.medium.paths


def test_what_is_not_a_regular_file_is_never_recognised_nor_read(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(apple_double())
    (tmp_path / "._linked").symlink_to(real)
    os.mkfifo(tmp_path / "._fifo")  # never opened for long: a FIFO would block a read
    (tmp_path / "._folder").mkdir()
    (tmp_path / ".DS_Store").symlink_to(real)
    (tmp_path / "outside").mkdir()
    (tmp_path / ".Trashes").symlink_to(tmp_path / "outside")  # a link, not the medium's
    (tmp_path / ".fseventsd").write_bytes(b"a file, not the folder")
    for name in ("._linked", "._fifo", "._folder", ".DS_Store"):
        assert recognise(tmp_path / name, top=False) is None, name
    assert recognise(tmp_path / ".Trashes", top=True) is None
    assert recognise(tmp_path / ".fseventsd", top=True) is None
    found = scan(tmp_path)
    assert {(o.path, o.kind) for o in found.odd} == {
        ("._linked", "symlink"), (".DS_Store", "symlink"), (".Trashes", "symlink"),
        ("._fifo", "unreadable")}
    assert found.regular == {"real", ".fseventsd"} and not found.medium.paths


def test_the_scan_sets_them_apart_and_never_walks_a_mediums_folder(tmp_path: Path) -> None:
    (tmp_path / "downloads" / "beats").mkdir(parents=True)
    (tmp_path / "downloads" / "beats" / "agent.tar.gz").write_bytes(b"agent")
    (tmp_path / "SHA512SUMS").write_text("sums\n")
    counts = add_mac_and_windows_files(tmp_path)
    (tmp_path / "downloads" / ".Trashes").mkdir()  # not at the top: a folder like any
    (tmp_path / "downloads" / ".Trashes" / "x").write_bytes(b"x")
    found = scan(tmp_path)
    assert found.regular == {"SHA512SUMS", "downloads/beats/agent.tar.gz",
                             "downloads/.Trashes/x"}
    assert not found.odd
    assert found.medium.folders == tuple(sorted(TOP_FOLDERS))
    assert len(found.medium.apple_double) == counts["appledouble"] == 4
    assert "downloads/beats/._agent.tar.gz" in found.medium.apple_double
    assert found.medium.finder == (".DS_Store", "downloads/.DS_Store",
                                   "downloads/beats/.DS_Store")
    # load --artifacts scans downloads/, which is no medium's top
    below = scan(tmp_path / "downloads", top=False)
    assert ".Trashes/x" in below.regular and not below.medium.folders


def test_one_warning_per_kind_with_a_count_and_how_to_remove_them(tmp_path: Path) -> None:
    said = MediumFiles(("._a", "b/._c"), (".DS_Store",), ("$RECYCLE.BIN", ".Trashes")
                       ).warnings(tmp_path)
    assert len(said) == 3
    assert said[0].startswith(f"{tmp_path}: 2 AppleDouble files (._NAME)")
    assert f"dot_clean -m {tmp_path}" in said[0]
    assert f"find {tmp_path} -name '._*' -type f -delete" in said[0]
    assert said[1].startswith(f"{tmp_path}: 1 .DS_Store file of macOS's Finder")
    assert f"find {tmp_path} -name .DS_Store -type f -delete" in said[1]
    assert "2 folders macOS or Windows keeps at the top of a medium ($RECYCLE.BIN, " \
           ".Trashes)" in said[2]
    assert MediumFiles().warnings(tmp_path) == []


def test_names_never_served_nor_laid_out() -> None:
    for path in ("._x.zip", "beats/._agent.tar.gz", ".DS_Store", "a/.DS_Store",
                 ".Trashes/501/x", "System Volume Information/x"):
        assert named_like(path), path
    for path in ("agent.tar.gz", "a/.Trashes/x", "_x", "a._b", "._"):
        assert not named_like(path), path


def test_an_output_folder_holding_only_a_mediums_files_is_taken_as_empty(
        tmp_path: Path) -> None:
    (tmp_path / "System Volume Information").mkdir()
    (tmp_path / "._bundle").write_bytes(apple_double())
    (tmp_path / ".DS_Store").write_bytes(ds_store())
    (tmp_path / "._fake").write_bytes(b"not one")
    assert [p.name for p in sorted(tmp_path.iterdir()) if not medium_folder(p)] == ["._fake"]
