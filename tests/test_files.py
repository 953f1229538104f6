"""Atomic writes: the old content or the new, never part, and nothing left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from airgap.files import (
    atomic_output,
    atomic_write,
    copy_atomically,
    share_or_copy,
    temporary_name,
)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_a_write_replaces_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "bundle.json"
    target.write_text("old\n")
    atomic_write(target, "new\n")
    assert target.read_text() == "new\n"
    assert leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "SHA512SUMS"
    target.write_text("complete\n")
    with pytest.raises(RuntimeError), atomic_output(target) as out:
        out.write(b"half of the ")
        raise RuntimeError("disk full")
    assert target.read_text() == "complete\n"
    assert leftovers(tmp_path) == []


def test_permissions_follow_the_umask_unless_given(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "plain", b"x")
        atomic_write(tmp_path / "secret", b"x", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_temporary_names_are_this_process_s_own_and_never_shared(tmp_path: Path) -> None:
    target = tmp_path / "out.tar"
    names = {temporary_name(target) for _ in range(100)}
    assert len(names) == 100
    assert all(n.parent == tmp_path and n.name.startswith(f".out.tar.{os.getpid()}.")
               and n.name.endswith(".part") for n in names)


def test_the_file_and_its_folder_reach_the_disk_before_the_rename_is_trusted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        synced.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    atomic_write(tmp_path / "index.json", "{}\n")
    assert len(synced) == 2
    assert synced[0].startswith(str(tmp_path / ".index.json."))  # the file, before its rename
    assert synced[1] == str(tmp_path)  # then the folder that holds the new name


def test_a_copy_is_byte_for_byte(tmp_path: Path) -> None:
    source = tmp_path / "agent.tar.gz"
    source.write_bytes(os.urandom(3 << 20 | 5))
    copy_atomically(source, tmp_path / "copy", chunk=1 << 20)
    assert (tmp_path / "copy").read_bytes() == source.read_bytes()
    assert leftovers(tmp_path) == []


def test_share_or_copy_links_on_one_file_system_and_copies_across(tmp_path: Path) -> None:
    source = tmp_path / "layer"
    source.write_bytes(os.urandom(100_000))
    before = source.stat()
    linked = tmp_path / "new" / "layer"
    linked.parent.mkdir()
    way = share_or_copy(source, linked)
    assert way in ("reflink", "link")  # ext4 here cannot clone: a hard link
    assert linked.read_bytes() == source.read_bytes()
    if way == "link":
        assert linked.stat().st_ino == source.stat().st_ino
    other = Path("/dev/shm")  # a tmpfs: another file system, and no clones
    if not other.is_dir():
        pytest.skip("no /dev/shm")
    copied = other / f"airgap-test-{os.getpid()}-layer"
    try:
        assert share_or_copy(source, copied) == "copy"
        assert copied.read_bytes() == source.read_bytes()
        assert copied.stat().st_nlink == 1
    finally:
        copied.unlink(missing_ok=True)
    assert source.stat().st_mtime_ns == before.st_mtime_ns
    assert leftovers(tmp_path) == leftovers(linked.parent) == []
