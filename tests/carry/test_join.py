"""airgap join: volumes in any order, one at a time on one small medium or all at once;
missing, duplicated, damaged and foreign volumes refused by number; the joined bundle is
the original, SHA512SUMS byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airgap.carry.index import INDEX, VolumeIndex
from airgap.cli import main
from tests.carry.media import tmpfs, used
from tests.carry.test_index import sealed
from tests.carrying import VOLUME_SIZE, Pair, read_report
from tests.conftest import REPO
from tests.peers.gpgkeys import SigningKey
from tests.terminal import in_pipe


def volume_folders(parts: Path) -> list[Path]:
    return sorted(p for p in parts.iterdir() if p.is_dir())


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha512(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def airgap(*args: str) -> subprocess.CompletedProcess[str]:
    """The command as an operator types it, through pipes."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "airgap", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_one_small_medium_carries_every_volume_in_turn_in_any_order(
        golden_volumes: Path, golden_bundle: Path, operator_key: Path, tmp_path: Path) -> None:
    folders = volume_folders(golden_volumes)
    before = tree(golden_volumes)
    random.Random(18).shuffle(folders)
    joined = tmp_path / "joined"
    for number, folder in enumerate(folders, 1):
        # One trip: the volume written to a medium that holds exactly VOLUME_SIZE bytes.
        with tmpfs(tmp_path / "medium", VOLUME_SIZE) as medium:
            for piece in folder.iterdir():
                shutil.copyfile(piece, medium / piece.name)
            assert used(medium) <= VOLUME_SIZE
            checked = airgap("verify", str(medium), "--trust-key", str(operator_key))
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert f"volume {int(folder.name)} of {len(folders)}" in flat(checked.stdout)
            added = airgap("join", str(medium), "-o", str(joined), "--partial",
                           "--trust-key", str(operator_key))
            assert added.returncode == 0, added.stdout + added.stderr
            if number < len(folders):
                assert "waiting for volume(s)" in flat(added.stdout)
                assert not (joined / "SHA512SUMS").exists()
    assert "all" in added.stdout and "intact: " in added.stdout
    # The files joined by the earlier trips sat on the disk between runs: hashed again.
    assert "re-hashed" in added.stdout and ", 0 re-hashed" not in flat(added.stdout)
    assert (joined / "SHA512SUMS").read_bytes() == (golden_bundle / "SHA512SUMS").read_bytes()
    assert tree(joined) == tree(golden_bundle)
    assert tree(golden_volumes) == before, "volumes are only read"


def test_all_volumes_at_once_in_shuffled_order(golden_volumes: Path, golden_bundle: Path,
                                               operator_key: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folders = volume_folders(golden_volumes)
    random.Random(7).shuffle(folders)
    joined = tmp_path / "joined"
    assert main(["join", *map(str, folders), "-o", str(joined), "--trust-key",
                 str(operator_key)]) == 0
    out = flat(capsys.readouterr().out)
    # Every file came whole in this run: checked from the bytes written, not read back.
    assert "intact: " in out and "hashed as they were written, 0 re-hashed)" in out
    assert tree(joined) == tree(golden_bundle)
    assert not (joined / ".airgap-join").exists() and not (joined / ".airgap.lock").exists()


def test_a_missing_volume_is_named_and_what_came_is_kept(
        golden_volumes: Path, golden_bundle: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folders = volume_folders(golden_volumes)
    joined = tmp_path / "joined"
    assert main(["join", *map(str, folders[:1] + folders[2:]), "-o", str(joined)]) == 1
    err = flat(capsys.readouterr().err)
    assert f"volume(s) 2 of {len(folders)} are missing" in err
    assert not (joined / "SHA512SUMS").exists()
    assert main(["join", str(folders[1]), "-o", str(joined)]) == 0
    assert tree(joined) == tree(golden_bundle)


def test_a_volume_given_twice_is_refused_and_one_joined_already_is_skipped(
        golden_volumes: Path, golden_bundle: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folders = volume_folders(golden_volumes)
    count = len(folders)
    again = shutil.copytree(folders[1], tmp_path / "second-copy")
    joined = tmp_path / "joined"
    assert main(["join", str(folders[0]), str(folders[1]), str(again), "-o",
                 str(joined)]) == 2
    err = flat(capsys.readouterr().err)
    assert f"volume 2 of {count} is given 2 times" in err
    assert f"volume(s) {', '.join(map(str, range(1, count + 1)))} of {count} are still to " \
           "join" in err
    assert main(["join", str(folders[0]), "-o", str(joined), "--partial"]) == 0
    capsys.readouterr()
    # The same volume again (the same command run again, say): skipped, with a note.
    added = in_pipe("join", str(folders[0]), "-o", str(joined), "--partial")
    assert added.returncode == 0, added.stderr
    assert f"{folders[0]} (volume 1 of {count}) is joined already: skipped" in added.stderr
    assert f"joined volume(s) none (1 joined already) of {count}" in flat(added.stdout)
    refused = in_pipe("join", str(folders[0]), str(folders[1]), str(again), "-o", str(joined))
    assert refused.returncode == 2
    assert f"volume(s) {', '.join(map(str, range(2, count + 1)))} of {count} are still to " \
           "join" in flat(refused.stderr)
    assert main(["join", *map(str, folders), "-o", str(joined)]) == 0
    assert tree(joined) == tree(golden_bundle)
    # Once the bundle is whole, the same command again only checks it.
    again_out = in_pipe("join", *map(str, folders), "-o", str(joined))
    assert again_out.returncode == 0, again_out.stderr
    assert "already: checking it again" in flat(again_out.stderr)
    assert "intact: " in again_out.stdout
    assert tree(joined) == tree(golden_bundle)


def test_what_a_person_may_give_by_mistake_is_named(
        golden_volumes: Path, golden_bundle: Path, tmp_path: Path) -> None:
    joined = tmp_path / "joined"
    parent = in_pipe("join", str(golden_volumes), "-o", str(joined))
    assert parent.returncode == 2
    assert f"give the volumes themselves: {golden_volumes}/*" in parent.stderr
    assert not joined.exists()
    bundle = in_pipe("join", str(golden_bundle), "-o", str(joined))
    assert bundle.returncode == 1
    assert "is not an airgap volume: it has no airgap-volume.json" in bundle.stderr
    assert not joined.exists()


def test_volumes_missing_are_in_the_json_result(golden_volumes: Path,
                                                tmp_path: Path) -> None:
    folders = volume_folders(golden_volumes)
    joined = tmp_path / "joined"
    done = in_pipe("join", str(folders[0]), str(folders[2]), "-o", str(joined), "--json")
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert document["exit_code"] == 1 and "are missing" in document["error"]["message"]
    result = document["result"]
    missing = [n for n in range(1, len(folders) + 1) if n not in (1, 3)]
    assert (result["added"], result["joined"], result["missing"]) == ([1, 3], [1, 3], missing)
    assert result["complete"] is False and result["skipped"] == []
    partial = in_pipe("join", str(folders[0]), str(folders[1]), "-o", str(joined), "--json",
                      "--partial")
    assert partial.returncode == 0
    result = json.loads(partial.stdout)["result"]
    assert (result["added"], result["skipped"], result["joined"]) == ([2], [1], [1, 2, 3])


def test_a_flipped_piece_is_named_and_that_volume_alone_is_sent_again(
        golden_volumes: Path, golden_bundle: Path, operator_key: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folders = volume_folders(golden_volumes)
    damaged = shutil.copytree(folders[1], tmp_path / "damaged")
    piece = max((p for p in damaged.iterdir() if re.fullmatch(r"[0-9]{6}", p.name)),
                key=lambda p: p.stat().st_size)
    data = bytearray(piece.read_bytes())
    data[len(data) // 3] ^= 0x40
    piece.write_bytes(bytes(data))

    assert main(["verify", str(damaged), "--trust-key", str(operator_key), "--json"]) == 3
    report = read_report(capsys.readouterr().out)
    assert [(p["path"], p["kind"]) for p in report["problems"]] == [(piece.name, "piece")]
    assert "the piece is damaged" in report["problems"][0]["message"]
    assert report["number"] == 2 and report["index_signature"] == "valid"

    joined = tmp_path / "joined"
    volumes = [str(f) for f in folders if f != folders[1]] + [str(damaged)]
    assert main(["join", *volumes, "-o", str(joined), "--trust-key", str(operator_key)]) == 3
    err = flat(capsys.readouterr().err)
    assert f"volume 2 of {len(folders)}, piece {piece.name}" in err
    assert "send those volumes again" in err
    assert main(["join", str(folders[1]), "-o", str(joined), "--trust-key",
                 str(operator_key)]) == 0
    assert tree(joined) == tree(golden_bundle)


def test_a_piece_its_index_was_rewritten_for_is_caught_by_its_files_digests(
        golden_volumes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # No --trust-key: the index is taken as it is, and it vouches for an altered piece, so
    # the join keeps it. The file's digests, taken from the bytes the join wrote rather
    # than read back, are still checked against SHA512SUMS and the blob's name.
    volumes = shutil.copytree(golden_volumes, tmp_path / "volumes")
    folders = volume_folders(volumes)
    index = VolumeIndex.from_bytes((folders[0] / INDEX).read_bytes(), "index")
    blob = max((p for p in index.pieces if p.file.startswith("images/blobs/sha256/")),
               key=lambda p: p.size)
    piece = folders[blob.volume - 1] / blob.name
    data = bytearray(piece.read_bytes())
    data[len(data) // 2] ^= 0x01
    piece.write_bytes(bytes(data))
    document = json.loads((folders[0] / INDEX).read_text())
    for entry in document["pieces"]:
        if entry["name"] == blob.name:
            entry["sha512"] = hashlib.sha512(data).hexdigest()
    rewritten = json.dumps(sealed(document))
    for folder in folders:
        (folder / INDEX).write_text(rewritten)
        (folder / f"{INDEX}.asc").unlink(missing_ok=True)

    joined = tmp_path / "joined"
    assert main(["join", *map(str, folders), "-o", str(joined), "--json"]) == 3
    report = read_report(capsys.readouterr().out)
    assert sorted((p["path"], p["message"]) for p in report["problems"]) == [
        (blob.file, "its SHA-512 differs from SHA512SUMS"),
        (blob.file, "its sha256 differs from its blob name")]


def test_a_part_changed_on_the_disk_between_two_joins_is_hashed_again_and_refused(
        golden_volumes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = volume_folders(golden_volumes)
    index = VolumeIndex.from_bytes((folders[0] / INDEX).read_bytes(), "index")
    joined = tmp_path / "joined"
    assert main(["join", *map(str, folders[:-1]), "-o", str(joined), "--partial",
                 "--quiet"]) == 0
    capsys.readouterr()
    # A file the first run joined whole: the last one writes none of its bytes.
    files = index.files()
    path = max((f for f, pieces in files.items()
                if all(p.volume < len(folders) for p in pieces)),
               key=lambda f: sum(p.size for p in files[f]))
    part = joined / ".airgap-join" / "parts" / str(list(files).index(path))
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    assert main(["join", str(folders[-1]), "-o", str(joined), "--json"]) == 3
    report = read_report(capsys.readouterr().out)
    assert [(p["path"], p["message"]) for p in report["problems"]
            if p["kind"] == "modified"][:1] == [(path, "its SHA-512 differs from SHA512SUMS")]


def test_a_volume_of_another_bundle_or_another_split_is_refused(
        golden_volumes: Path, golden_bundle: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Another bundle: the golden one with one package more (SHA512SUMS says so).
    other = shutil.copytree(golden_bundle, tmp_path / "other")
    extra = other / "packages" / "extra" / "extra-1.0.0.zip"
    extra.parent.mkdir()
    extra.write_bytes(b"PK" + os.urandom(1000))
    with (other / "SHA512SUMS").open("a") as sums:
        sums.write(f"{hashlib.sha512(extra.read_bytes()).hexdigest()}  "
                   "packages/extra/extra-1.0.0.zip\n")
    assert main(["split", str(other), "-o", str(tmp_path / "other-parts"), "--size",
                 str(VOLUME_SIZE), "--quiet"]) == 0
    resplit = tmp_path / "resplit"
    assert main(["split", str(golden_bundle), "-o", str(resplit), "--size", "3MiB",
                 "--quiet"]) == 0
    capsys.readouterr()

    ours = volume_folders(golden_volumes)
    theirs = volume_folders(tmp_path / "other-parts")
    assert main(["join", str(ours[0]), str(theirs[1]), "-o", str(tmp_path / "a")]) == 2
    err = flat(capsys.readouterr().err)
    ours_id = VolumeIndex.from_bytes((ours[0] / INDEX).read_bytes(), "x").bundle[:32]
    theirs_id = VolumeIndex.from_bytes((theirs[1] / INDEX).read_bytes(), "x").bundle[:32]
    assert f"(volume 2 of {len(theirs)}) belongs to the bundle sha512:{theirs_id}" in err
    assert f"not to sha512:{ours_id}" in err and "foreign volume" in err
    assert not (tmp_path / "a").exists(), "a join refused at once leaves nothing"
    assert main(["join", str(ours[0]), str(volume_folders(resplit)[0]), "-o",
                 str(tmp_path / "b")]) == 2
    assert "is from another split of the same bundle" in flat(capsys.readouterr().err)
    assert not (tmp_path / "b").exists()
    # Into a folder of one's own, given empty: it stays, empty; a join begun keeps its
    # pieces and names the volumes it still needs.
    (tmp_path / "c").mkdir()
    assert main(["join", str(theirs[0]), str(ours[1]), "-o", str(tmp_path / "c")]) == 2
    assert list((tmp_path / "c").iterdir()) == []
    assert main(["join", str(ours[0]), "-o", str(tmp_path / "c"), "--partial"]) == 0
    capsys.readouterr()
    assert main(["join", str(theirs[1]), "-o", str(tmp_path / "c")]) == 2
    err = flat(capsys.readouterr().err)
    assert "foreign volume" in err
    assert f"volume(s) {', '.join(map(str, range(2, len(ours) + 1)))} of {len(ours)} are " \
           "still to join" in err
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [".airgap-join"]


def test_an_index_the_trusted_key_did_not_sign_is_refused(
        golden_bundle: Path, golden_volumes: Path, operator_key: Path, attacker: SigningKey,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unsigned = tmp_path / "unsigned"
    assert main(["split", str(golden_bundle), "-o", str(unsigned), "--size", "3MiB",
                 "--quiet"]) == 0
    first = volume_folders(unsigned)[0]
    assert main(["join", str(first), "-o", str(tmp_path / "j1"), "--trust-key",
                 str(operator_key)]) == 3
    assert "has no airgap-volume.json.asc" in flat(capsys.readouterr().err)
    # An index rewritten whole (its own SHA-512 made again, as anyone can): its signature
    # no longer holds.
    forged = shutil.copytree(volume_folders(golden_volumes)[0], tmp_path / "forged")
    document = json.loads((forged / INDEX).read_bytes())
    document["created"] = "1" + document["created"]
    (forged / INDEX).write_text(json.dumps(sealed(document)))
    assert main(["verify", str(forged)]) == 0
    capsys.readouterr()
    assert main(["verify", str(forged), "--trust-key", str(operator_key)]) == 3
    assert "does not match its signature" in flat(capsys.readouterr().err)
    attacker.sign(forged / INDEX, forged / "airgap-volume.json.asc")
    assert main(["join", str(forged), "-o", str(tmp_path / "j2"), "--trust-key",
                 str(operator_key)]) == 3
    assert "not a trusted key" in flat(capsys.readouterr().err)


def test_a_delta_split_and_joined_merges_into_its_base(pair: Pair, operator: SigningKey,
                                                       operator_key: Path,
                                                       tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    assert main(["split", str(pair.delta), "-o", str(parts), "--size", "40KiB",
                 "--sign-with", operator.fingerprint, "--gnupg-home", str(operator.home),
                 "--quiet"]) == 0
    folders = volume_folders(parts)
    assert len(folders) >= 2
    checked = airgap("verify", str(folders[0]), "--trust-key", str(operator_key))
    assert "of the delta sha512:" in flat(checked.stdout)
    joined = tmp_path / "delta"
    assert main(["join", *map(str, reversed(folders)), "-o", str(joined), "--trust-key",
                 str(operator_key), "--quiet"]) == 0
    assert tree(joined) == tree(pair.delta)
    new = tmp_path / "new"
    assert main(["merge", str(pair.base), str(joined), "-o", str(new), "--trust-key",
                 str(operator_key), "--quiet"]) == 0
    assert main(["verify", str(new), "--trust-key", str(operator_key)]) == 0


def test_join_with_a_trust_key_that_did_not_sign_is_refused_and_without_one_proves_intactness(
        golden_volumes: Path, golden_bundle: Path, attacker: SigningKey, operator_key: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The same contract as merge's: with --trust-key, as verify; without, nothing lost or
    # altered, and the trust rule applied where the bundle is used.
    folders = volume_folders(golden_volumes)
    other = attacker.export_public(tmp_path / "other.asc")
    refused = tmp_path / "refused"
    assert main(["join", *map(str, folders), "-o", str(refused), "--trust-key",
                 str(other), "--quiet"]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "airgap-volume.json: signed by key ID" in err and "not a trusted key" in err, err
    assert "give --trust-key with the public key that signed airgap-volume.json.asc" in err
    assert "trust.keys" not in err  # the manifest's: no help on the isolated side
    assert not (refused / "SHA512SUMS").exists()
    joined = tmp_path / "joined"
    assert main(["join", *map(str, folders), "-o", str(joined), "--quiet"]) == 0
    assert tree(joined) == tree(golden_bundle)
    assert main(["verify", str(joined), "--quiet"]) == 3
    assert main(["verify", str(joined), "--trust-key", str(operator_key), "--quiet"]) == 0
