"""Atomic writes: the old content or the new, never part, and nothing left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from airgap.files import (
    atomic_output,
    atomic_write,
    clone_or_copy,
    copy_atomically,
    share_or_copy,
    temporary_name,
)
from tests.carry.media import btrfs, shares_blocks


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


@pytest.mark.parametrize("kind", ["FIFO", "directory", "device"])
def test_reading_what_is_not_a_regular_file_is_refused_at_once(kind: str,
                                                              tmp_path: Path) -> None:
    from airgap.files import NotRegularFileError, check_regular, read_regular

    path = tmp_path / "thing"
    if kind == "FIFO":
        os.mkfifo(path)  # nobody writes: a plain read would wait for ever
    elif kind == "directory":
        path.mkdir()
    else:
        path = Path("/dev/zero")  # a plain read would never end
    with pytest.raises(NotRegularFileError, match="not a regular file"):
        read_regular(path, 1 << 20)
    with pytest.raises(NotRegularFileError):
        check_regular(path)


def test_reading_more_than_the_limit_is_refused(tmp_path: Path) -> None:
    from airgap.files import FileTooLargeError, read_regular

    path = tmp_path / "big"
    path.write_bytes(b"x" * 1001)
    assert read_regular(path, 1001) == b"x" * 1001
    with pytest.raises(FileTooLargeError):
        read_regular(path, 1000)


def test_a_clone_or_copy_is_a_file_of_its_own(tmp_path: Path) -> None:
    from airgap.files import clone_or_copy

    source = tmp_path / "source"
    source.write_bytes(os.urandom(300_000))
    target = tmp_path / "target"
    target.write_text("old")
    clone_or_copy(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert not target.samefile(source) and source.stat().st_nlink == 1
    target.write_bytes(b"changed")
    assert len(source.read_bytes()) == 300_000
    assert leftovers(tmp_path) == []


def test_only_the_leftovers_of_dead_processes_are_removed(tmp_path: Path) -> None:
    import subprocess

    from airgap.files import is_dead_leftover, remove_dead_leftovers

    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = tmp_path / f".bundle.json.{gone.pid}.0123abcd.part"
    mine = temporary_name(tmp_path / "bundle.json")
    alive = tmp_path / f".bundle.json.{os.getppid()}.0123abcd.part"
    download = tmp_path / "elastic-agent.tar.gz.part"  # a download's fixed name: resumed
    nested = tmp_path / "a" / "b" / f".x.{gone.pid}.89abcdef.part"
    nested.parent.mkdir(parents=True)
    for path in (dead, mine, alive, download, nested):
        path.write_text("partial")
    assert is_dead_leftover(dead.name) and not is_dead_leftover(mine.name)
    assert remove_dead_leftovers(tmp_path) == [dead]
    assert remove_dead_leftovers(tmp_path, recursive=True) == [nested]
    assert mine.exists() and alive.exists() and download.exists()


def test_links_a_write_could_go_through_are_removed(tmp_path: Path) -> None:
    from airgap.files import remove_if_shared

    outside = tmp_path / "outside"
    outside.write_text("keep me")
    link, hard, plain = tmp_path / "link.part", tmp_path / "hard.part", tmp_path / "plain.part"
    link.symlink_to(outside)
    os.link(outside, hard)
    plain.write_text("mine")
    assert remove_if_shared(link) and remove_if_shared(hard)
    assert not remove_if_shared(plain) and not remove_if_shared(tmp_path / "absent")
    assert outside.read_text() == "keep me" and plain.exists()
    assert not link.exists() and not hard.exists()
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
    assert other.is_dir(), "this test needs /dev/shm"
    copied = other / f"airgap-test-{os.getpid()}-layer"
    try:
        assert share_or_copy(source, copied) == "copy"
        assert copied.read_bytes() == source.read_bytes()
        assert copied.stat().st_nlink == 1
    finally:
        copied.unlink(missing_ok=True)
    assert source.stat().st_mtime_ns == before.st_mtime_ns
    assert leftovers(tmp_path) == leftovers(linked.parent) == []


def test_on_a_file_system_that_clones_a_copy_is_a_clone_of_its_own(tmp_path: Path) -> None:
    with btrfs(tmp_path / "btrfs") as fs:
        source = fs / "layer"
        source.write_bytes(os.urandom(1 << 20))
        plain = fs / "plain"
        copy_atomically(source, plain)  # bytes written again: nothing shared (the control)
        assert not shares_blocks(plain)
        cloned = fs / "new" / "layer"
        cloned.parent.mkdir()
        assert share_or_copy(source, cloned) == "reflink"
        assert clone_or_copy(source, fs / "again") is True
        for clone in (cloned, fs / "again"):
            assert clone.read_bytes() == source.read_bytes()
            assert clone.stat().st_ino != source.stat().st_ino
            assert shares_blocks(clone)
        assert source.stat().st_nlink == 1
        original = source.read_bytes()
        with cloned.open("r+b") as changed:  # copy on write: the source keeps its bytes
            changed.write(b"changed on the served side")
        assert source.read_bytes() == original
        assert leftovers(fs) == leftovers(cloned.parent) == []
