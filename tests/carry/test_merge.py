"""airgap merge: a delta into the bundle it was made from, never changing either, and
nothing written unless both verify and the delta names that very bundle."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from airgap.bundle.delta import identity, target_files
from airgap.bundle.description import read_description
from airgap.bundle.sums import format_sums
from airgap.carry.merge import MergeSettings, merge
from airgap.cli import main
from airgap.reporter import NullReporter
from tests.carry.media import btrfs, shares_blocks, tmpfs
from tests.carrying import Pair, read_report
from tests.medium import add_mac_and_windows_files, ds_store
from tests.peers.gpgkeys import SigningKey
from tests.terminal import in_pipe


def copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def state(bundle: Path) -> dict[str, tuple[str, int]]:
    """Every file's SHA-512 and mtime: what "never changed" means."""
    return {p.relative_to(bundle).as_posix(): (hashlib.sha512(p.read_bytes()).hexdigest(),
                                               p.stat().st_mtime_ns)
            for p in bundle.rglob("*") if p.is_file()}


def from_base(delta: Path) -> list[str]:
    return [i.path for i in read_description(delta).items if i.origin == "base"]


def test_merge_links_from_the_base_verifies_and_never_changes_either(
        pair: Pair, operator_key: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    base, delta = copy(pair.base, tmp_path / "base"), copy(pair.delta, tmp_path / "delta")
    before = state(base), state(delta)
    new = tmp_path / "new"
    code = main(["merge", str(base), str(delta), "-o", str(new), "--trust-key",
                 str(operator_key), "--hard-link"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    assert "intact: " in out and "operator signature: valid" in out
    assert f"the bundle sha512:{identity((new / 'SHA512SUMS').read_bytes())[:32]}" in out
    assert (state(base), state(delta)) == before
    # The same file system here, and --hard-link: every file shared, none copied (ext4 has
    # no reflinks).
    for path in from_base(delta):
        assert (new / path).stat().st_ino == (base / path).stat().st_ino, path
    assert "copied" not in out
    assert main(["verify", str(new), "--trust-key", str(operator_key), "--json"]) == 0
    report = read_report(capsys.readouterr().out)
    assert report["ok"] and report["delta_of"] is None
    assert read_description(new).format == 2 and read_description(new).delta is None


def test_merge_copies_unless_hard_links_are_asked_for(
        pair: Pair, operator_key: Path, tmp_path: Path) -> None:
    new = tmp_path / "new"
    assert main(["merge", str(pair.base), str(pair.delta), "-o", str(new), "--trust-key",
                 str(operator_key), "--quiet"]) == 0
    for path in from_base(pair.delta):  # files of their own: a change to BASE stays there
        assert (new / path).stat().st_ino != (pair.base / path).stat().st_ino, path
        assert (pair.base / path).stat().st_nlink == 1


def test_merge_onto_a_file_system_without_reflinks_or_links_copies(
        pair: Pair, operator_key: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "other-fs", 64 << 20) as medium:
        new = medium / "new"
        result = merge(MergeSettings(pair.base, pair.delta, new, (operator_key,)),
                       NullReporter())
        assert result.report.ok
        assert result.placed == {"copy": len(read_description(pair.delta).items)}
        assert all((new / p).stat().st_nlink == 1 for p in from_base(pair.delta))
        assert main(["verify", str(new), "--trust-key", str(operator_key)]) == 0


def test_merge_on_a_file_system_that_clones_clones_every_file(
        pair: Pair, operator_key: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with btrfs(tmp_path / "btrfs") as medium:
        base, delta = copy(pair.base, medium / "base"), copy(pair.delta, medium / "delta")
        before = state(base), state(delta)
        new = medium / "new"
        code = main(["merge", str(base), str(delta), "-o", str(new), "--trust-key",
                     str(operator_key)])
        out = " ".join(capsys.readouterr().out.split())
        assert code == 0, out
        assert f"files: {len(read_description(delta).items)} cloned " in out
        large = [p for p in from_base(delta) if (base / p).stat().st_size > 64 << 10]
        assert large, "no file large enough to hold blocks of its own"
        for path in large:  # clones: files of their own that share the base's blocks
            assert (new / path).stat().st_ino != (base / path).stat().st_ino, path
            assert shares_blocks(new / path), path
        assert (state(base), state(delta)) == before
        assert main(["verify", str(new), "--trust-key", str(operator_key), "--quiet"]) == 0


def test_a_delta_of_a_base_fetched_again_with_other_content_is_refused(
        pair: Pair, operator_key: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    new = tmp_path / "new"
    assert identity((pair.refetched / "SHA512SUMS").read_bytes()) != \
        identity((pair.base / "SHA512SUMS").read_bytes())
    code = main(["merge", str(pair.refetched), str(pair.delta), "-o", str(new),
                 "--trust-key", str(operator_key)])
    err = capsys.readouterr().err
    assert code == 3
    wanted = identity((pair.base / "SHA512SUMS").read_bytes())[:32]
    given = identity((pair.refetched / "SHA512SUMS").read_bytes())[:32]
    assert f"is a delta of the bundle sha512:{wanted}" in " ".join(err.split())
    assert f"is the bundle sha512:{given}" in " ".join(err.split())
    assert "nothing was written" in err
    assert not new.exists()


@pytest.mark.parametrize("damaged", ["base", "delta"])
def test_a_base_or_delta_that_fails_verification_is_refused_before_anything_is_written(
        damaged: str, pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, delta = copy(pair.base, tmp_path / "base"), copy(pair.delta, tmp_path / "delta")
    victim = base if damaged == "base" else delta
    name = next(p for p in read_description(delta).items
                if p.kind in ("image-layer", "package") and
                (p.origin == "base") == (damaged == "base")).path
    data = bytearray((victim / name).read_bytes())
    data[len(data) // 2] ^= 1
    (victim / name).write_bytes(bytes(data))
    new = tmp_path / "new"
    assert main(["merge", str(base), str(delta), "-o", str(new)]) == 3
    captured = capsys.readouterr()
    assert f"the {damaged} {victim} failed verification: nothing was written" in \
        " ".join(captured.err.split())
    assert name in captured.err  # a detail of the error, as in the problem table
    assert not new.exists()


def test_the_merged_bundle_is_removed_when_it_does_not_verify(
        pair: Pair, attacker: SigningKey, signer_public_key: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A delta (unsigned) that swaps the signature of a file it leaves to the base: alone,
    it cannot be caught (the file is not in it); merged, the new bundle fails."""
    delta = copy(pair.delta, tmp_path / "delta")
    description = read_description(delta)
    artifact = next(i for i in description.items if i.kind == "artifact" and
                    i.origin == "base")
    signature = artifact.verification.signature
    assert signature is not None
    forged = delta / signature
    forged.parent.mkdir(parents=True, exist_ok=True)
    attacker.sign(pair.base / artifact.path, forged)
    data = forged.read_bytes()
    items = tuple(dataclasses.replace(i, origin="carried", size=len(data),
                                      sha512=hashlib.sha512(data).hexdigest())
                  if i.path == signature else i for i in description.items)
    forged_description = dataclasses.replace(description, items=items)
    target = identity(target_files(forged_description)[1].encode())
    assert forged_description.delta is not None
    forged_description = dataclasses.replace(forged_description, delta=dataclasses.replace(
        forged_description.delta, target=target, target_signature=None))
    forged_description.write(delta)
    sums = [(i.path, i.sha512) for i in forged_description.items if i.origin == "carried"]
    sums.append(("bundle.json", hashlib.sha512((delta / "bundle.json").read_bytes())
                 .hexdigest()))
    (delta / "SHA512SUMS").write_text(format_sums(sums))
    (delta / "SHA512SUMS.asc").unlink()
    # Alone, the delta cannot show it: all verify finds is that nothing from outside
    # vouches for Defend's artifacts it carries (it is unsigned).
    assert main(["verify", str(delta), "--trust-signer", str(signer_public_key),
                 "--json"]) == 3
    alone = read_report(capsys.readouterr().out)
    assert [(p["path"], p["kind"]) for p in alone["problems"]] == [("security/", "unvouched")]

    new = tmp_path / "new"
    assert main(["merge", str(pair.base), str(delta), "-o", str(new)]) == 3
    captured = capsys.readouterr()
    assert f"the merged bundle failed verification: {new} was removed" in \
        " ".join(captured.err.split())
    assert signature in captured.err
    assert not new.exists()


def test_what_merge_refuses_to_do(pair: Pair, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    new = tmp_path / "new"
    assert main(["merge", str(pair.base), str(pair.refetched), "-o", str(new)]) == 2
    assert "is a complete bundle, not a delta" in capsys.readouterr().err
    assert main(["merge", str(pair.base), str(pair.delta), "-o",
                 str(pair.base / "new")]) == 2
    assert "never into its sources" in " ".join(capsys.readouterr().err.split())
    full = tmp_path / "full"
    full.mkdir()
    (full / "something").write_text("mine")
    assert main(["merge", str(pair.base), str(pair.delta), "-o", str(full)]) == 2
    assert "is not a new or empty folder" in capsys.readouterr().err
    assert (full / "something").read_text() == "mine"
    assert not new.exists()


def test_what_an_interrupted_merge_left_is_replaced(pair: Pair, tmp_path: Path) -> None:
    new = tmp_path / "new"
    (new / "images").mkdir(parents=True)
    (new / ".airgap.lock").write_text("12345\n")
    (new / "images" / "half-written").write_text("x")
    result = merge(MergeSettings(pair.base, pair.delta, new), NullReporter())
    assert result.report.ok
    assert not (new / "images" / "half-written").exists()
    assert not (new / ".airgap.lock").exists()


def test_a_merged_bundle_a_stopped_merge_left_is_checked_not_refused(
        pair: Pair, operator_key: Path, tmp_path: Path) -> None:
    new = tmp_path / "new"
    command = ("merge", str(pair.base), str(pair.delta), "-o", str(new))
    assert in_pipe(*command, "--quiet").returncode == 0
    made = state(new)
    # As a merge killed while it verified NEW leaves it: whole, and not said to be good.
    again = in_pipe(*command)
    assert again.returncode == 0, again.stderr
    assert "already in place" in again.stdout and "intact: " in again.stdout
    assert state(new) == made, "nothing was written again"
    # One that does not verify is made again.
    victim = next(p for p in from_base(pair.delta) if p.startswith("downloads/"))
    (new / victim).write_bytes(b"damaged")
    remade = in_pipe(*command)
    assert remade.returncode == 0, remade.stderr
    assert "fails verification: it is made again" in " ".join(remade.stderr.split())
    assert (new / victim).read_bytes() == (pair.base / victim).read_bytes()


def test_without_trust_key_signatures_are_checked_not_listed_as_failures(
        pair: Pair, operator_key: Path, tmp_path: Path) -> None:
    merged = in_pipe("merge", str(pair.base), str(pair.delta), "-o", str(tmp_path / "new"))
    assert merged.returncode == 0, merged.stderr
    assert "unvouched" not in merged.stderr
    assert re.search(r"signatures: \d+ checked, signer not vouched for \(give --trust-key "
                     r"to check\)", merged.stderr), merged.stderr
    assert "0 of" not in merged.stderr
    assert re.search(r"(\d+) signatures re-checked \(\1 by a signer not vouched for: "
                     r"give --trust-key to check\)", " ".join(merged.stdout.split()))
    # With the key, each signature is listed, as verify lists them.
    trusted = in_pipe("merge", str(pair.base), str(pair.delta), "-o", str(tmp_path / "new2"),
                      "--trust-key", str(operator_key))
    assert trusted.returncode == 0, trusted.stderr
    assert re.search(r"verified downloads/\S+\.asc", trusted.stderr)
    assert "not vouched" not in trusted.stderr
    # And verify, without it, still names every file nothing vouches for.
    checked = in_pipe("verify", str(tmp_path / "new"))
    assert checked.returncode == 3 and "unvouched" in checked.stdout


def test_a_volume_given_as_the_delta_is_to_be_joined_first(
        pair: Pair, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    assert main(["split", str(pair.delta), "-o", str(parts), "--size", "40KiB",
                 "--quiet"]) == 0
    for given in (parts / "001", parts):
        refused = in_pipe("merge", str(pair.base), str(given), "-o", str(tmp_path / "new"))
        assert refused.returncode == 2
        err = " ".join(refused.stderr.split())
        assert f"{given}, given as the delta, " in err and "not a bundle" in err
        assert f"join the volumes first: airgap join {parts}/* -o FOLDER" in err
        assert "airgap fetch" not in err
    assert not (tmp_path / "new").exists()


def test_verify_checks_what_a_delta_carries_and_the_target_it_names(
        pair: Pair, signer_public_key: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    delta = copy(pair.delta, tmp_path / "delta")
    document = json.loads((delta / "bundle.json").read_text())
    document["delta"]["target"] = "f" * 128
    (delta / "bundle.json").write_text(json.dumps(document, indent=2))
    digest = hashlib.sha512((delta / "bundle.json").read_bytes()).hexdigest()
    sums = (delta / "SHA512SUMS").read_text().splitlines()
    (delta / "SHA512SUMS").write_text("".join(
        f"{digest}  bundle.json\n" if line.endswith("  bundle.json") else f"{line}\n"
        for line in sums))
    assert main(["verify", str(delta), "--trust-signer", str(signer_public_key), "--json"]) == 3
    report = read_report(capsys.readouterr().out)
    assert [(p["path"], p["kind"]) for p in report["problems"]] == [
        ("bundle.json", "description"), ("security/", "unvouched")]
    assert "does not make the bundle it names" in report["problems"][0]["message"]


def test_a_delta_is_merged_never_loaded(pair: Pair, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", str(pair.delta), "--artifacts", str(tmp_path / "artifacts")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "is a delta of the bundle sha512:" in err and "merge it first" in err
    assert not (tmp_path / "artifacts").exists()


def test_inspect_says_what_a_delta_carries_and_which_bundle_it_completes(
        pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(pair.delta), "--json"]) == 0
    contents = read_report(capsys.readouterr().out)
    assert contents["delta_of"] == identity((pair.base / "SHA512SUMS").read_bytes())
    assert contents["identity"] == identity((pair.delta / "SHA512SUMS").read_bytes())
    carried = [i for i in read_description(pair.delta).items if i.origin == "carried"]
    assert contents["carried"] == {"files": len(carried),
                                   "bytes": sum(i.size for i in carried)}
    assert 0 < contents["carried"]["bytes"] < contents["bytes"]
    assert main(["inspect", str(pair.base)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"identity: sha512:{identity((pair.base / 'SHA512SUMS').read_bytes())[:32]}" in out


def test_a_delta_is_not_a_base(pair: Pair, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["merge", str(pair.delta), str(pair.delta), "-o", str(tmp_path / "n")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "is a delta itself, not a complete bundle" in err and "merge it into its own" in err
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize("key", ["none", "the operator's", "another"])
def test_merge_vouches_as_verify_with_trust_key_and_proves_intactness_without(
        key: str, pair: Pair, operator_key: Path, attacker: SigningKey, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The contract (docs/security.md): merge takes nothing out of a bundle, so without
    --trust-key it proves only that nothing was lost or altered, and the trust rule is
    applied where NEW is used; with one, the operator's signature must be valid."""
    new = tmp_path / "new"
    trust = {"none": [], "the operator's": ["--trust-key", str(operator_key)],
             "another": ["--trust-key", str(attacker.export_public(tmp_path / "other.asc"))]}
    code = main(["merge", str(pair.base), str(pair.delta), "-o", str(new), "--quiet",
                 *trust[key]])
    err = " ".join(capsys.readouterr().err.split())
    if key == "another":
        assert code == 3, err
        assert "SHA512SUMS.asc" in err and "nothing was written" in err
        assert "give --trust-key with the public key that signed SHA512SUMS.asc" in err, err
        assert "trust.keys" not in err
        assert not new.exists()
        return
    assert code == 0, err
    # Used without a key from outside, NEW is refused for what nobody vouches for alone.
    assert main(["verify", str(new), "--json"]) == 3
    report = read_report(capsys.readouterr().out)
    assert report["problems"] and {p["kind"] for p in report["problems"]} == {"unvouched"}
    assert main(["verify", str(new), "--trust-key", str(operator_key), "--quiet"]) == 0


def test_a_merge_onto_a_fresh_ext4_medium_keeps_its_empty_lost_and_found(
        pair: Pair, operator_key: Path, tmp_path: Path) -> None:
    medium = tmp_path / "medium"
    (medium / "lost+found").mkdir(parents=True, mode=0o700)
    done = in_pipe("merge", str(pair.base), str(pair.delta), "-o", str(medium))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (medium / "lost+found").is_dir() and not any((medium / "lost+found").iterdir())
    checked = in_pipe("verify", str(medium), "--trust-key", str(operator_key))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "lost+found" in checked.stderr  # a warning naming the medium's folder
    # fsck's files are no reason to write there: the medium was damaged
    other = tmp_path / "other"
    (other / "lost+found").mkdir(parents=True, mode=0o700)
    (other / "lost+found" / "#12").write_bytes(b"recovered")
    refused = in_pipe("merge", str(pair.base), str(pair.delta), "-o", str(other))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is not a new or empty folder" in refused.stderr
    assert [p.name for p in other.iterdir()] == ["lost+found"]
    assert (other / "lost+found" / "#12").read_bytes() == b"recovered"


def test_finders_files_in_base_and_delta_never_reach_the_merged_bundle(
        pair: Pair, operator_key: Path, tmp_path: Path) -> None:
    base, delta = copy(pair.base, tmp_path / "base"), copy(pair.delta, tmp_path / "delta")
    add_mac_and_windows_files(base)
    add_mac_and_windows_files(delta)
    medium = tmp_path / "medium"  # a FAT32 stick Windows and macOS have both seen
    (medium / "$RECYCLE.BIN").mkdir(parents=True)
    (medium / ".DS_Store").write_bytes(ds_store())
    done = in_pipe("merge", str(base), str(delta), "-o", str(medium), "--trust-key",
                   str(operator_key))
    assert done.returncode == 0, done.stdout + done.stderr
    said = " ".join(done.stderr.split())
    assert f"{base}: " in said and f"{delta}: " in said and "AppleDouble files" in said
    assert f"{medium}: 1 .DS_Store file of macOS's Finder" in said  # the output's own check
    merged = sorted(p.relative_to(medium).as_posix() for p in medium.rglob("*"))
    made = in_pipe("merge", str(pair.base), str(pair.delta), "-o", str(tmp_path / "clean"))
    assert made.returncode == 0, made.stderr
    assert merged == sorted([".DS_Store", "$RECYCLE.BIN", *(
        p.relative_to(tmp_path / "clean").as_posix() for p in (tmp_path / "clean").rglob("*"))])
