"""airgap split: volumes that hold at most their size, everything included, and no file
larger than the medium takes, checked by the kernel on every file written."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airgap.bundle.staging import Staging
from airgap.carry.index import INDEX, INDEX_SIGNATURE, VolumeIndex
from airgap.carry.volumes import blocks
from airgap.cli import main
from tests.carrying import MAX_FILE, VOLUME_SIZE
from tests.conftest import REPO
from tests.medium import add_mac_and_windows_files, apple_double
from tests.syscalls import failing_open
from tests.terminal import in_pipe


def volume_folders(parts: Path) -> list[Path]:
    return sorted(p for p in parts.iterdir() if p.is_dir())


def test_every_volume_holds_at_most_its_size_in_short_plain_files(
        golden_volumes: Path, golden_bundle: Path) -> None:
    folders = volume_folders(golden_volumes)
    assert [f.name for f in folders] == [f"{n:03d}" for n in range(1, len(folders) + 1)]
    assert len(folders) >= 3
    index = (folders[0] / INDEX).read_bytes()
    pieces = 0
    for folder in folders:
        files = list(folder.iterdir())
        assert all(f.is_file() and not f.is_symlink() for f in files)
        assert sum(blocks(f.stat().st_size, 4096) for f in files) <= VOLUME_SIZE, folder
        assert all(f.stat().st_size <= MAX_FILE for f in files), folder
        assert (folder / INDEX).read_bytes() == index, "the same index in every volume"
        assert (folder / INDEX_SIGNATURE).is_file()
        names = {f.name for f in files} - {INDEX, INDEX_SIGNATURE}
        assert all(re.fullmatch(r"[0-9]{6}", n) for n in names)
        pieces += len(names)
    read = VolumeIndex.from_bytes(index, "index")
    assert read.volumes == len(folders) and len(read.pieces) == pieces
    bundle_files = {p.relative_to(golden_bundle).as_posix(): p.stat().st_size
                    for p in golden_bundle.rglob("*") if p.is_file()}
    assert {path: sum(p.size for p in found) for path, found in read.files().items()} == \
        bundle_files


def split_with_file_limit(bundle: Path, parts: Path, limit: int, *options: str
                          ) -> subprocess.CompletedProcess[str]:
    """``airgap split`` in a process the kernel holds to files of at most ``limit`` bytes
    (RLIMIT_FSIZE: a write past it fails with EFBIG, as FAT32's 4 GiB - 1 does)."""
    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "airgap", "split", str(bundle), "-o",
                           str(parts), "--quiet", *options], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=limited)


def test_max_file_holds_under_a_per_file_limit_the_kernel_enforces(
        golden_bundle: Path, tmp_path: Path) -> None:
    limit = 200 << 10
    without = split_with_file_limit(golden_bundle, tmp_path / "without", limit,
                                    "--size", "2MiB")
    assert without.returncode == 1, without.stderr
    assert "File too large" in without.stderr
    assert not any((tmp_path / "without").rglob("0*")), "what failed is removed"

    parts = tmp_path / "parts"
    limited = split_with_file_limit(golden_bundle, parts, limit, "--size", "2MiB",
                                    "--max-file", str(limit))
    assert limited.returncode == 0, limited.stderr
    assert max(p.stat().st_size for p in parts.rglob("*") if p.is_file()) <= limit


# In the first of the layer's pieces (whose hash is the file's so far) or in its last.
@pytest.mark.parametrize("where", [1000, -1000])
def test_a_damaged_bundle_is_not_split(where: int, golden_bundle: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    layer = max((p for p in (bundle / "images/blobs/sha256").iterdir()),
                key=lambda p: p.stat().st_size)
    data = bytearray(layer.read_bytes())
    assert len(data) > 3 * 64 * 1024  # several pieces of 64 KiB
    data[where] ^= 1
    layer.write_bytes(bytes(data))
    parts = tmp_path / "parts"
    assert main(["split", str(bundle), "-o", str(parts), "--size", "1MiB",
                 "--max-file", "64KiB"]) == 3
    assert "its SHA-512 differs from SHA512SUMS: the bundle is damaged" in \
        " ".join(capsys.readouterr().err.split())
    assert not parts.exists(), "the folder the split made is removed with its volumes"

    (bundle / "SHA512SUMS").unlink()
    assert main(["split", str(bundle), "-o", str(tmp_path / "again"), "--size", "1MiB"]) == 1
    assert "is not a complete bundle: it has no SHA512SUMS" in capsys.readouterr().err


def test_what_an_unfinished_fetch_left_beside_a_bundle_is_not_carried(
        golden_bundle: Path, operator_key: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    # What a fetch killed mid-download leaves: a staging folder, the lock file it held.
    staged = Staging(bundle).path("packages/apache/apache-1.2.0.zip.part")
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"half a package")
    (bundle / ".airgap.lock").write_text("12345\n")
    parts, joined = tmp_path / "parts", tmp_path / "joined"
    assert main(["split", str(bundle), "-o", str(parts), "--size", "1MiB", "--quiet"]) == 0
    assert main(["join", *map(str, volume_folders(parts)), "-o", str(joined),
                 "--quiet"]) == 0
    assert main(["verify", str(joined), "--trust-key", str(operator_key), "--quiet"]) == 0
    assert not (joined / ".airgap-next").exists() and not (joined / ".airgap.lock").exists()
    assert (joined / "SHA512SUMS").read_bytes() == (bundle / "SHA512SUMS").read_bytes()
    # A fetch stopped while it moved its files in: the bundle is neither old nor new.
    Staging(bundle).path("COMMIT").write_text('{"moves": [], "removals": []}\n')
    capsys.readouterr()
    assert main(["split", str(bundle), "-o", str(tmp_path / "again"), "--size",
                 "1MiB"]) == 1
    assert "run the same airgap fetch again to finish it" in capsys.readouterr().err


def test_sizes_too_small_or_folders_in_use_are_refused(
        golden_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["split", str(golden_bundle), "-o", str(tmp_path / "p"), "--size",
                 "8KiB"]) == 2
    assert "is too small: the index alone takes" in capsys.readouterr().err
    assert main(["split", str(golden_bundle), "-o", str(golden_bundle / "parts"),
                 "--size", "1MiB"]) == 2
    assert "is inside the bundle it splits" in capsys.readouterr().err
    assert main(["split", str(golden_bundle), "-o", str(tmp_path / "p"), "--size",
                 "4XB"]) == 2
    assert "is not a size (say 4GiB, 4.7GB, 700MB or 4GiB-1)" in capsys.readouterr().err


def test_a_split_again_replaces_what_an_earlier_or_interrupted_one_left(
        golden_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parts = tmp_path / "parts"
    assert main(["split", str(golden_bundle), "-o", str(parts), "--size", "1MiB",
                 "--quiet"]) == 0
    many = volume_folders(parts)
    # What a split killed while writing leaves: a temporary piece, and no index.
    (many[-1] / "airgap-volume.json").unlink()
    (many[-1] / ".000099.4242.deadbeef.part").write_bytes(b"half")
    assert main(["split", str(golden_bundle), "-o", str(parts), "--size", "4MiB",
                 "--quiet"]) == 0
    few = volume_folders(parts)
    assert len(few) < len(many)
    assert all((folder / INDEX).is_file() for folder in few)
    assert not any(p.name.endswith(".part") for p in parts.rglob("*"))

    (few[0] / "notes.txt").write_text("mine")
    assert main(["split", str(golden_bundle), "-o", str(parts), "--size", "4MiB"]) == 2
    assert "nor one holding volumes" in capsys.readouterr().err
    assert (few[0] / "notes.txt").read_text() == "mine"


def test_split_into_a_pipe_prints_one_line_per_volume_and_logs_on_stderr(
        golden_bundle: Path, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    done = in_pipe("split", str(golden_bundle), "-o", str(parts), "--size", "2MiB")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    folders = volume_folders(parts)
    assert re.fullmatch(rf"{len(folders)} volume\(s\) of the bundle sha512:[0-9a-f]{{32}}",
                        lines[0])
    for line, folder in zip(lines[1:], folders, strict=False):
        assert re.fullmatch(rf"volume {re.escape(str(folder))} [\d.]+ (KiB|MiB)", line), line
    assert lines[-2].startswith("done: ") and "NOT signed (give --sign-with)" in lines[-2]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ done writing \d+ pieces [\d.]+ MiB",
                        done.stderr.strip())


def test_a_split_onto_a_fresh_ext4_medium_keeps_its_empty_lost_and_found(
        golden_bundle: Path, tmp_path: Path) -> None:
    medium = tmp_path / "medium"
    (medium / "lost+found").mkdir(parents=True, mode=0o700)
    done = in_pipe("split", str(golden_bundle), "-o", str(medium), "--size", "2MiB")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (medium / "lost+found").is_dir() and not any((medium / "lost+found").iterdir())
    count = int(done.stdout.split(" volume(s)")[0])
    assert [p.name for p in volume_folders(medium)] == [
        *(f"{n:03d}" for n in range(1, count + 1)), "lost+found"]
    again = in_pipe("split", str(golden_bundle), "-o", str(medium), "--size", "2MiB")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (medium / "lost+found").is_dir()
    # A person who is not root may not list root's 0700 folder (the kernel refuses it here).
    unlisted = in_pipe("split", str(golden_bundle), "-o", str(medium), "--size", "2MiB",
                       prefix=failing_open((medium / "lost+found").resolve()))
    assert unlisted.returncode == 0, unlisted.stdout + unlisted.stderr
    # fsck's files are no reason to write there: the medium was damaged
    (medium / "lost+found" / "#12").write_bytes(b"recovered")
    refused = in_pipe("split", str(golden_bundle), "-o", str(medium), "--size", "2MiB")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is not a new or empty folder" in refused.stderr
    assert (medium / "lost+found" / "#12").read_bytes() == b"recovered"


def test_finders_files_are_a_warning_never_carried_and_a_mediums_top_is_written_to(
        golden_bundle: Path, tmp_path: Path) -> None:
    bundle = shutil.copytree(golden_bundle, tmp_path / "bundle")
    counts = add_mac_and_windows_files(bundle)
    medium = tmp_path / "medium"  # a Windows-formatted stick Finder has seen
    (medium / "System Volume Information").mkdir(parents=True)
    (medium / "System Volume Information" / "WPSettings.dat").write_bytes(b"Windows'")
    (medium / "._.Trashes").write_bytes(apple_double())
    done = in_pipe("split", str(bundle), "-o", str(medium), "--size", "2MiB")
    assert done.returncode == 0, done.stdout + done.stderr
    said = " ".join(done.stderr.split())
    assert f"{bundle}: {counts['appledouble']} AppleDouble files (._NAME)" in said
    assert ".DS_Store files of macOS's Finder" in said and "top of a medium" in said
    volumes = [p for p in volume_folders(medium) if p.name.isdigit()]
    assert not [p for v in volumes for p in v.iterdir() if p.name.startswith(".")]
    assert (medium / "System Volume Information" / "WPSettings.dat").read_bytes() == b"Windows'"
    joined = tmp_path / "joined"
    assert in_pipe("join", *map(str, volumes), "-o", str(joined)).returncode == 0
    assert (joined / "SHA512SUMS").read_bytes() == (golden_bundle / "SHA512SUMS").read_bytes()
    assert sorted(p.relative_to(joined).as_posix() for p in joined.rglob("*")) == \
        sorted(p.relative_to(golden_bundle).as_posix() for p in golden_bundle.rglob("*"))
