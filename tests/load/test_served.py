"""``airgap serve BUNDLE`` verifies the bundle first, with ``load --artifacts``'s trust rule:
a bundle damaged or vouched for by nothing from outside exits 3 and is never served.

Run as a person runs it, in a pipe and at a terminal; a server that wrongly starts serving
would never end, and the test fails on its timeout.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import httpx
import pytest

from tests.bundle.test_tampering import CASES
from tests.bundle.test_verify import AGENT
from tests.medium import add_mac_and_windows_files
from tests.peers.gpgkeys import SigningKey
from tests.peers.net import free_port
from tests.peers.serving import serve, stop
from tests.terminal import at_terminal, in_pipe

#: The tampering cases that touch what serve takes out: downloads/ and its trust.
SERVE_CASES = ["flipped byte in an artifact", "deleted file", "replaced .asc",
               "keys/ swapped for the attacker's, artifacts re-signed",
               "artifact .asc deleted and dropped, artifact relabelled",
               "unsigned binary added to downloads/ and described as a checksum",
               "artifact replaced by a symlink to an identical file outside",
               "garbage SHA512SUMS",
               "a trojan agent, the whole bundle rewritten around it with another key"]


@pytest.fixture
def bundle(golden_bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(golden_bundle, copy)
    return copy


def nothing_listens(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("case", SERVE_CASES)
def test_a_tampered_bundle_exits_3_before_serving(case: str, bundle: Path,
                                                  attacker: SigningKey,
                                                  operator_key: Path) -> None:
    named = CASES[case](bundle, attacker)
    port = free_port()
    result = in_pipe("serve", str(bundle), "--port", str(port), "--trust-key",
                     str(operator_key), env={"COLUMNS": "300"}, timeout=60)
    assert result.returncode == 3, result.stderr
    assert named in result.stdout + result.stderr
    assert "nothing was served" in result.stderr
    assert "serving" not in result.stderr and "Traceback" not in result.stderr
    assert nothing_listens(port)


def test_a_damaged_bundle_at_a_terminal_exits_3_naming_the_file(
        bundle: Path, attacker: SigningKey, operator_key: Path) -> None:
    named = CASES["flipped byte in an artifact"](bundle, attacker)
    port = free_port()
    seen = at_terminal("serve", str(bundle), "--port", str(port), "--trust-key",
                       str(operator_key), timeout=60)
    seen.assert_no_traceback()
    assert seen.code == 3, seen.text
    assert named.rsplit("/", 1)[-1] in seen.text
    assert "failed verification: nothing was served" in " ".join(seen.text.split())
    assert nothing_listens(port)


def test_signer_keys_that_only_the_bundle_carries_vouch_for_nothing(
        golden_bundle: Path, signer_public_key: Path) -> None:
    result = in_pipe("serve", str(golden_bundle), "--port", str(free_port()),
                     env={"COLUMNS": "300"}, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "--trust-signer" in result.stdout and "unvouched" in result.stdout
    # Your own copy of the signer's key vouches for downloads/: it is served.
    process, port = serve(golden_bundle, "--trust-signer", str(signer_public_key))
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/downloads/{AGENT.split('/', 1)[1]}")
        assert answer.content == (golden_bundle / AGENT).read_bytes()
    finally:
        err = stop(process)
    assert f"verified {golden_bundle}: " in err
    assert "operator signature: present, not checked" in err


def test_skip_verify_serves_a_damaged_bundle_with_a_warning(
        bundle: Path, attacker: SigningKey) -> None:
    named = CASES["flipped byte in an artifact"](bundle, attacker)
    process, port = serve(bundle, "--skip-verify")
    try:
        served = httpx.get(f"http://127.0.0.1:{port}/downloads/{named.split('/', 1)[1]}")
        assert served.content == (bundle / named).read_bytes()
    finally:
        err = stop(process)
    assert "--skip-verify: the bundle is NOT being checked" in err
    assert "verified" not in err


@pytest.mark.parametrize("option", [["--skip-verify"], ["--trust-key", "{key}"],
                                    ["--trust-signer", "{key}"]])
def test_trust_options_with_a_laid_out_tree_are_a_usage_error(
        tmp_path: Path, operator_key: Path, option: list[str]) -> None:
    tree = tmp_path / "served"
    (tree / "beats").mkdir(parents=True)
    port = free_port()
    result = in_pipe("serve", str(tree), "--port", str(port),
                     *[o.format(key=operator_key) for o in option], timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{option[0]} is for a bundle" in result.stderr
    assert nothing_listens(port)


def test_finders_files_in_a_bundle_are_a_warning_and_never_served(
        bundle: Path, operator_key: Path) -> None:
    add_mac_and_windows_files(bundle)
    agent = bundle / AGENT
    finders = agent.parent / f"._{agent.name}"
    process, port = serve(bundle, "--trust-key", str(operator_key))
    base = f"http://127.0.0.1:{port}/downloads/"
    relative = agent.relative_to(bundle / "downloads").as_posix()
    try:
        assert httpx.get(base + relative).content == agent.read_bytes()
        for name in (f"{relative.rsplit('/', 1)[0]}/._{agent.name}", "beats/.DS_Store",
                     ".DS_Store", "._beats"):
            assert httpx.get(base + name).status_code == 404, name
    finally:
        err = stop(process)
    assert finders.read_bytes()[:4] == b"\x00\x05\x16\x07"  # it was there, and not served
    assert "AppleDouble files (._NAME)" in err and "serving" in err


def test_a_laid_out_tree_never_serves_such_names_whatever_they_hold(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "beats" / ".Trashes").mkdir(parents=True)
    (tree / "beats" / "agent.tar.gz").write_bytes(b"agent")
    (tree / "beats" / "._agent.tar.gz").write_bytes(b"agent")  # not even Finder's
    (tree / ".Trashes").mkdir()
    (tree / ".Trashes" / "agent.tar.gz").write_bytes(b"agent")
    (tree / "beats" / ".Trashes" / "agent.tar.gz").write_bytes(b"agent")  # not at the top
    process, port = serve(tree)
    base = f"http://127.0.0.1:{port}/downloads/"
    try:
        assert httpx.get(base + "beats/agent.tar.gz").status_code == 200
        assert httpx.get(base + "beats/.Trashes/agent.tar.gz").status_code == 200
        assert httpx.get(base + "beats/._agent.tar.gz").status_code == 404
        assert httpx.get(base + ".Trashes/agent.tar.gz").status_code == 404
    finally:
        stop(process)
