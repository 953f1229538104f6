"""airgap verify VOLUME: one volume checked alone, as it is inserted, in a terminal too."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from airgap.bundle.medium import MediumFiles
from airgap.carry.index import INDEX, VolumeIndex
from airgap.cli import main
from tests.carrying import read_report
from tests.conftest import REPO
from tests.medium import TOP_FOLDERS, add_mac_and_windows_files
from tests.terminal import in_pipe

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def in_terminal(*args: str, timeout: float = 120) -> tuple[int, str]:
    """Run ``airgap ARGS`` in a pseudo-terminal 200 columns wide, as a person does; return
    its exit code and what the person saw (colours and cursor moves taken out)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(PYTHONPATH=str(REPO), TERM="xterm-256color")
    process = subprocess.Popen([sys.executable, "-m", "airgap", *args], cwd=REPO, env=env,
                               stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            seen += data
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        os.close(master)
    return code, _ESCAPE.sub("", seen.decode(errors="replace")).replace("\r", "")


def volume_folders(parts: Path) -> list[Path]:
    return sorted(p for p in parts.iterdir() if p.is_dir())


def pieces_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if re.fullmatch(r"[0-9]{6}", p.name))


def test_an_intact_volume_in_a_terminal(golden_volumes: Path, operator_key: Path) -> None:
    folders = volume_folders(golden_volumes)
    code, seen = in_terminal("verify", str(folders[2]), "--trust-key", str(operator_key))
    assert code == 0, seen
    flat = " ".join(seen.split())
    assert "intact: " in flat
    assert f"volume 3 of {len(folders)} of the bundle sha512:" in flat
    assert "index signature: valid" in flat


def test_every_kind_of_damage_is_named_by_piece(golden_volumes: Path, operator_key: Path,
                                                tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    source = max(volume_folders(golden_volumes), key=lambda f: len(pieces_of(f)))
    volume = shutil.copytree(source, tmp_path / "volume")
    flipped, removed, linked = pieces_of(volume)[:3]
    data = bytearray(flipped.read_bytes())
    data[-1] ^= 1
    flipped.write_bytes(bytes(data))
    removed.unlink()
    linked.unlink()
    linked.symlink_to(source / linked.name)
    (volume / "notes.txt").write_text("added on the way")

    assert main(["verify", str(volume), "--trust-key", str(operator_key), "--json"]) == 3
    report = read_report(capsys.readouterr().out)
    found = {(p["path"], p["kind"]): p["message"] for p in report["problems"]}
    assert "the piece is damaged" in found[(flipped.name, "piece")]
    assert "missing from the volume" in found[(removed.name, "piece")]
    assert "a link is never followed" in found[(linked.name, "piece")]
    assert (linked.name, "symlink") in found
    assert len(found) == 4
    # A file added on the way is no damage: named in a warning, and ignored (as join does).
    assert [w for w in report["warnings"] if "notes.txt" in w and "not its pieces" in w]
    index = VolumeIndex.from_bytes((volume / INDEX).read_bytes(), "i")
    held = index.by_name()[flipped.name]
    assert f"(it holds {held.describe()})" in found[(flipped.name, "piece")]


def test_without_trust_key_the_index_signature_is_only_noted(
        golden_volumes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(volume_folders(golden_volumes)[0]), "--json"]) == 0
    report = read_report(capsys.readouterr().out)
    assert report["ok"] and report["index_signature"] == "present, not checked (give " \
                                                         "--trust-key)"


def test_a_volume_of_mixed_pieces_is_refused(golden_volumes: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    first, second = volume_folders(golden_volumes)[:2]
    mixed = shutil.copytree(first, tmp_path / "mixed")
    shutil.copy(pieces_of(second)[0], mixed)
    assert main(["verify", str(mixed)]) == 3
    assert "holds pieces of volumes 1, 2" in capsys.readouterr().err


def test_what_a_mediums_system_adds_is_said_as_for_a_bundle_by_verify_and_join_alike(
        golden_volumes: Path, golden_bundle: Path, operator_key: Path,
        tmp_path: Path) -> None:
    medium = tmp_path / "medium"
    folders = volume_folders(golden_volumes)
    shutil.copytree(folders[0], medium)
    counts = add_mac_and_windows_files(medium)  # as Finder copies it; both systems' folders
    (medium / "._notes").write_bytes(b"named like Finder's, and not one")

    checked = in_pipe("verify", str(medium), "--trust-key", str(operator_key))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "intact: " in checked.stdout and "damaged" not in checked.stderr
    said = [" ".join(line.split("warning: ", 1)[1].split())
            for line in checked.stderr.splitlines() if "warning: " in line]
    # the very lines verify BUNDLE says, one per kind
    assert said[:3] == MediumFiles(("._",) * counts["appledouble"],
                                   (".DS_Store",) * counts["ds_store"], tuple(TOP_FOLDERS)
                                   ).warnings(medium), said
    assert f"{counts['appledouble']} AppleDouble files" in said[0]
    # and what is not recognised, as before: named, ignored
    assert said[3].endswith("holds 1 file(s) that are not its pieces, ignored (added after "
                            "the split): ._notes"), said
    as_json = in_pipe("verify", str(medium), "--json")
    assert as_json.returncode == 0
    assert read_report(as_json.stdout)["problems"] == []
    assert len(read_report(as_json.stdout)["warnings"]) == 4

    joined = tmp_path / "joined"
    added = in_pipe("join", str(medium), *map(str, folders[1:]), "-o", str(joined),
                    "--trust-key", str(operator_key))
    assert added.returncode == 0, added.stdout + added.stderr
    assert f"{medium}: {counts['appledouble']} AppleDouble files" in added.stderr
    assert "._notes" in added.stderr
    assert (joined / "SHA512SUMS").read_bytes() == (golden_bundle / "SHA512SUMS").read_bytes()
    assert not [p for p in joined.rglob("*") if p.name.startswith("._")
                or p.name in (".DS_Store", "System Volume Information")]


def test_an_unsigned_index_with_a_bit_flipped_is_damage_of_that_volume(
        golden_bundle: Path, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    assert main(["split", str(golden_bundle), "-o", str(parts), "--size", "1MiB",
                 "--quiet"]) == 0
    folders = volume_folders(parts)
    damaged = shutil.copytree(folders[1], tmp_path / "damaged")
    data = bytearray((damaged / INDEX).read_bytes())
    at = data.index(b'"created": "') + len(b'"created": "') + 3  # 2026 -> 2027, say
    data[at] ^= 0x01
    (damaged / INDEX).write_bytes(bytes(data))

    checked = in_pipe("verify", str(damaged))
    assert checked.returncode == 3, checked.stdout + checked.stderr
    err = " ".join(checked.stderr.split())
    assert "airgap-volume.json is damaged" in err and "send it again" in err

    # Joined first, it is refused as damaged, not taken as the set the others are foreign to.
    joined = tmp_path / "joined"
    first = in_pipe("join", str(damaged), str(folders[0]), "-o", str(joined))
    assert first.returncode == 3, first.stderr
    assert "another split" not in first.stderr and "send it again" in first.stderr
    others = in_pipe("join", *[str(f) for f in folders if f != folders[1]], "-o",
                     str(joined), "--partial")
    assert others.returncode == 0, others.stderr
    resent = in_pipe("join", str(folders[1]), "-o", str(joined))
    assert resent.returncode == 0, resent.stderr
    assert (joined / "SHA512SUMS").read_bytes() == (golden_bundle / "SHA512SUMS").read_bytes()


def test_an_empty_lost_and_found_is_the_mediums_for_verify_and_join_alike(
        golden_volumes: Path, golden_bundle: Path, operator_key: Path,
        tmp_path: Path) -> None:
    # Each volume on the top of a freshly formatted ext4 medium, as is, and the join into
    # another such medium: mkfs made an empty lost+found on each.
    folders = volume_folders(golden_volumes)
    medium = shutil.copytree(folders[0], tmp_path / "medium")
    (medium / "lost+found").mkdir(mode=0o700)
    checked = in_pipe("verify", str(medium), "--trust-key", str(operator_key))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    warning = " ".join(line for line in checked.stderr.splitlines() if "warning:" in line)
    assert f"{medium / 'lost+found'}: the empty folder a fresh ext4 medium holds" in warning
    assert "not its pieces" not in warning
    as_json = in_pipe("verify", str(medium), "--json")
    assert as_json.returncode == 0 and read_report(as_json.stdout)["problems"] == []

    joined = tmp_path / "target"
    (joined / "lost+found").mkdir(parents=True, mode=0o700)
    added = in_pipe("join", str(medium), *map(str, folders[1:]), "-o", str(joined),
                    "--trust-key", str(operator_key))
    assert added.returncode == 0, added.stdout + added.stderr
    assert f"{medium / 'lost+found'}: the empty folder" in added.stderr
    assert f"{joined / 'lost+found'}: the empty folder" in added.stderr  # the bundle's check
    assert (joined / "SHA512SUMS").read_bytes() == (golden_bundle / "SHA512SUMS").read_bytes()
    assert (joined / "lost+found").is_dir() and not any((joined / "lost+found").iterdir())


def test_a_lost_and_found_that_fsck_put_files_in_is_damage_of_the_volume(
        golden_volumes: Path, golden_bundle: Path, operator_key: Path,
        tmp_path: Path) -> None:
    folders = volume_folders(golden_volumes)
    medium = shutil.copytree(folders[0], tmp_path / "medium")
    (medium / "lost+found").mkdir(mode=0o700)
    (medium / "lost+found" / "#12").write_bytes(b"recovered")
    checked = in_pipe("verify", str(medium), "--trust-key", str(operator_key), "--json")
    assert checked.returncode == 3, checked.stderr
    found = read_report(checked.stdout)["problems"]
    assert [(p["path"], p["kind"]) for p in found] == [("lost+found/", "lost+found")]
    assert "holds 1 entry fsck recovered (#12)" in found[0]["message"]
    # join checks every piece against the index all the same: it says so, and goes on
    joined = tmp_path / "joined"
    added = in_pipe("join", str(medium), *map(str, folders[1:]), "-o", str(joined),
                    "--trust-key", str(operator_key))
    assert added.returncode == 0, added.stdout + added.stderr
    assert "holds 1 entry fsck recovered (#12)" in added.stderr
    assert (joined / "SHA512SUMS").read_bytes() == (golden_bundle / "SHA512SUMS").read_bytes()
