"""airgap verify: an intact bundle passes; every kind of tampering exits 3 naming the file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airgap.cli import main
from airgap.digests import hash_file
from tests.peers.gpgkeys import SigningKey

AGENT = "downloads/beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"


@pytest.fixture
def bundle(golden_bundle: Path, tmp_path: Path) -> Path:
    """A copy of the golden bundle, to tamper with."""
    copy = tmp_path / "bundle"
    shutil.copytree(golden_bundle, copy)
    return copy


def verify(bundle: Path, *extra: str, capsys: pytest.CaptureFixture[str]
           ) -> tuple[int, dict[str, Any]]:
    code = main(["verify", str(bundle), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def problems(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["path"], p["kind"]) for p in report["problems"]}


def flip(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def update_sums(bundle: Path, *paths: str) -> None:
    """What a careful attacker does: make SHA512SUMS agree with the altered files."""
    text = (bundle / "SHA512SUMS").read_text()
    for path in paths:
        digest = hash_file(bundle / path).sha512
        text = re.sub(rf"^[0-9a-f]{{128}}  {re.escape(path)}$", f"{digest}  {path}", text,
                      flags=re.MULTILINE)
    (bundle / "SHA512SUMS").write_text(text)


def test_intact_bundle_passes_and_coreutils_agrees(bundle: Path, operator_key: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert subprocess.run(["sha512sum", "-c", "--quiet", "SHA512SUMS"], cwd=bundle).returncode == 0
    code, report = verify(bundle, "--trust-key", str(operator_key), capsys=capsys)
    assert code == 0, report["problems"]
    assert report["ok"] and report["operator_signature"] == "valid"
    assert report["signatures"] == 7  # agent, filebeat, metricbeat for 2 arches; nginx
    assert report["warnings"] == []


def test_unsigned_check_warns_about_foreign_keys(bundle: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, report = verify(bundle, capsys=capsys)
    assert code == 0
    assert report["operator_signature"] == "present, not checked (give --trust-key)"
    assert "keys other than the Elastic key pinned in airgap" in report["warnings"][0]


def blob_of(bundle: Path) -> str:
    index = json.loads((bundle / "bundle.json").read_text())["image"]
    layer = index["platforms"]["linux/amd64"]["layers"][0]
    return f"images/blobs/sha256/{layer[7:]}"


TAMPERS: dict[str, tuple[Callable[[Path, SigningKey], str], set[str]]] = {}


def tamper(name: str, kinds: set[str]) -> Callable[[Callable[[Path, SigningKey], str]],
                                                   Callable[[Path, SigningKey], str]]:
    def register(function: Callable[[Path, SigningKey], str]) -> Callable[[Path, SigningKey], str]:
        TAMPERS[name] = (function, kinds)
        return function
    return register


@tamper("flipped byte in a blob", {"modified"})
def _blob(bundle: Path, attacker: SigningKey) -> str:
    path = blob_of(bundle)
    flip(bundle / path)
    return path


@tamper("flipped byte in an artifact", {"modified", "signature"})
def _artifact(bundle: Path, attacker: SigningKey) -> str:
    flip(bundle / AGENT)
    return AGENT


@tamper("flipped byte in a package", {"modified"})
def _package(bundle: Path, attacker: SigningKey) -> str:
    path = "packages/nginx/nginx-2.0.0.zip"
    flip(bundle / path, 30)
    return path


@tamper("truncated file", {"modified", "description"})
def _truncated(bundle: Path, attacker: SigningKey) -> str:
    path = bundle / AGENT
    path.write_bytes(path.read_bytes()[:1000])
    return AGENT


@tamper("deleted file", {"missing"})
def _deleted(bundle: Path, attacker: SigningKey) -> str:
    path = "downloads/beats/filebeat/filebeat-9.0.0-linux-arm64.tar.gz"
    (bundle / path).unlink()
    return path


@tamper("added file", {"unlisted"})
def _added(bundle: Path, attacker: SigningKey) -> str:
    path = "downloads/beats/elastic-agent/backdoor.sh"
    (bundle / path).write_text("#!/bin/sh\n")
    return path


@tamper("replaced .asc", {"modified", "signature"})
def _replaced_asc(bundle: Path, attacker: SigningKey) -> str:
    attacker.sign(bundle / AGENT)
    return AGENT + ".asc"


@tamper("edited SHA512SUMS line", {"modified", "description"})
def _edited_sums(bundle: Path, attacker: SigningKey) -> str:
    text = (bundle / "SHA512SUMS").read_text()
    # Change the first hex digit to a different one, whatever it was.
    lines = [("1" if line[0] == "0" else "0") + line[1:] if line.endswith(f"  {AGENT}") else line
             for line in text.splitlines()]
    (bundle / "SHA512SUMS").write_text("\n".join(lines) + "\n")
    return AGENT


@tamper("edited bundle.json", {"modified"})
def _edited_description(bundle: Path, attacker: SigningKey) -> str:
    document = json.loads((bundle / "bundle.json").read_text())
    document["image"]["reference"] = "evil.example/registry:9.0.0"
    (bundle / "bundle.json").write_text(json.dumps(document, indent=2))
    return "bundle.json"


@tamper("keys/ swapped for the attacker's, artifacts re-signed", {"keys", "signature"})
def _swapped_keys(bundle: Path, attacker: SigningKey) -> str:
    document = json.loads((bundle / "bundle.json").read_text())
    (ours,) = [k["path"] for k in document["keys"] if not k["elastic"]]
    attacker.export_public(bundle / ours)
    signed = [i["verification"]["signature"] for i in document["items"]
              if i["kind"] in ("artifact", "package")]
    for signature in signed:
        target = bundle / signature.removesuffix(".asc").removesuffix(".sig")
        attacker.sign(target, bundle / signature)
    update_sums(bundle, ours, *signed)
    return ours


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampering_exits_3_naming_the_file(name: str, bundle: Path, attacker: SigningKey,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    function, kinds = TAMPERS[name]
    path = function(bundle, attacker)
    code, report = verify(bundle, capsys=capsys)
    assert code == 3
    found = problems(report)
    assert path in {p for p, _ in found}, found
    assert {k for _, k in found} >= kinds, found


def test_tampering_table_names_the_file(bundle: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    (bundle / "packages/nginx/nginx-2.0.0.zip").write_bytes(b"gone")
    assert main(["verify", str(bundle)]) == 3
    captured = capsys.readouterr()
    assert "packages/nginx/nginx-2.0.0.zip" in captured.out
    assert "failed verification" in captured.err


def test_operator_signature_by_another_key_fails(bundle: Path, attacker: SigningKey,
                                                 operator_key: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    attacker.sign(bundle / "SHA512SUMS", bundle / "SHA512SUMS.asc")
    code, report = verify(bundle, "--trust-key", str(operator_key), capsys=capsys)
    assert code == 3
    assert ("SHA512SUMS.asc", "operator-signature") in problems(report)


def test_a_bundle_rewritten_whole_is_caught_only_by_trust_key(
        bundle: Path, attacker: SigningKey, signer: SigningKey, operator_key: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The attacker re-signs everything, rewrites bundle.json and SHA512SUMS consistently.
    document = json.loads((bundle / "bundle.json").read_text())
    old = next(k for k in document["keys"] if not k["elastic"])
    (bundle / old["path"]).unlink()
    new_path = f"keys/{attacker.fingerprint}.asc"
    attacker.export_public(bundle / new_path)
    text = json.dumps(document).replace(signer.fingerprint, attacker.fingerprint)
    document = json.loads(text)
    for item in document["items"]:
        if item["kind"] in ("artifact", "package"):
            signature = item["verification"]["signature"]
            attacker.sign(bundle / item["path"], bundle / signature)
    for item in document["items"]:
        digests = hash_file(bundle / item["path"])
        item["size"], item["sha512"] = digests.size, digests.sha512
    (bundle / "bundle.json").write_text(json.dumps(document, indent=2))
    lines = [f"{hash_file(bundle / i['path']).sha512}  {i['path']}" for i in document["items"]]
    lines.append(f"{hash_file(bundle / 'bundle.json').sha512}  bundle.json")
    (bundle / "SHA512SUMS").write_text("\n".join(sorted(lines, key=lambda x: x[130:])) + "\n")
    code, report = verify(bundle, capsys=capsys)
    assert code == 0 and report["warnings"], "consistent forgery: only a warning without a key"
    code, report = verify(bundle, "--trust-key", str(operator_key), capsys=capsys)
    assert code == 3
    assert ("SHA512SUMS.asc", "operator-signature") in problems(report)


def test_trust_key_without_a_signature_fails(bundle: Path, operator_key: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (bundle / "SHA512SUMS.asc").unlink()
    code, report = verify(bundle, "--trust-key", str(operator_key), capsys=capsys)
    assert code == 3 and ("SHA512SUMS.asc", "operator-signature") in problems(report)


def test_incomplete_bundle_says_so(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bundle / "SHA512SUMS").unlink()
    code, report = verify(bundle, capsys=capsys)
    assert code == 3
    assert report["problems"][0]["message"].startswith("the bundle has no SHA512SUMS")


def test_inspect_summarises_without_hashing(bundle: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(bundle), "--json"]) == 0
    contents = json.loads(capsys.readouterr().out)
    assert contents["stack_version"] == "9.0.0" and contents["complete"] and contents["signed"]
    assert set(contents["image"]["platforms"]) == {"linux/amd64", "linux/arm64"}
    assert {a["platform"] for a in contents["artifacts"]["elastic-agent"]} == {
        "linux/x86_64", "linux/arm64"}
    assert [(p["name"], p["version"]) for p in contents["packages"]] == [("nginx", "2.0.0")]
    assert contents["bytes"] > 0
    assert main(["inspect", str(bundle)]) == 0
    assert "elastic-agent" in capsys.readouterr().out
