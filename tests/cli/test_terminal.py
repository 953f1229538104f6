"""Every command at a real terminal: a pseudo-terminal, its screen rendered by pyte.

What a person sees is checked: the exit code, the last lines on the screen, and that no
traceback ever appears. The live lines are drawn while the work runs and cleared at its
end: what they showed (speeds, totals) is read from the bytes the command drew.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pexpect
import pytest

from tests.conftest import ManifestMaker, site_manifest
from tests.peers.artifacts import ArtifactServer
from tests.peers.epr import EprServer
from tests.peers.files import Fault
from tests.peers.net import free_port
from tests.peers.processes import Dockerd, DockerRegistry
from tests.peers.registry_front import RegistryFront
from tests.terminal import at_terminal

AGENT = "downloads/beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"


def test_fetch_at_a_terminal_shows_its_phases_and_ends_with_the_bundle(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=3 << 20)
    # Slow enough for the live lines to be drawn a few times.
    artifact_server.faults.inject("*.tar.gz", Fault("slow", times=-1, delay=0.05))
    seen = at_terminal("fetch", str(manifest), "-o", str(tmp_path / "bundle"))
    seen.assert_no_traceback()
    assert seen.code == 0, seen.text
    # The live lines: one per phase, with totals the servers announced, and speeds.
    drawn = seen.drawn
    for phase in ("image", "artifacts", "packages"):
        assert re.search(rf"{phase}\s+[━╸╺]+\s+[\d.]+ (B|KiB|MiB)/[\d.]+ (KiB|MiB)", drawn), \
            phase
    assert re.search(r"[\d.]+ (KiB|MiB)/s", drawn)
    assert not re.search(r"artifacts\s+[━╸╺]+\s+\S+/\?", drawn)  # every size was known
    # The end: each file with what was proved, then the bundle.
    assert f"fetched  {AGENT}" in seen.text
    assert "sha512 ok, signature ok" in seen.text
    assert seen.lines[-1].startswith("done: ") and "SHA512SUMS" in seen.lines[-1]


def test_ctrl_c_at_a_terminal_says_what_was_kept(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=8 << 20)
    artifact_server.faults.inject("*.tar.gz", Fault("slow", times=-1, delay=0.05))

    def interrupt(child: pexpect.spawn) -> None:
        child.expect("fetched ", timeout=120)
        child.sendintr()  # Ctrl-C, as the terminal sends it

    seen = at_terminal("fetch", str(manifest), "-o", str(tmp_path / "bundle"), when=interrupt)
    seen.assert_no_traceback()
    assert seen.code == 130
    last = seen.lines[-1]
    assert last.startswith("interrupted: ") and "files done" in last
    assert "run the same command again" in last


def test_verify_at_a_terminal(golden_bundle: Path, operator_key: Path) -> None:
    seen = at_terminal("verify", str(golden_bundle), "--trust-key", str(operator_key))
    seen.assert_no_traceback()
    assert seen.code == 0
    assert seen.lines[-1].startswith(f"intact: {golden_bundle}")


def test_verify_at_a_terminal_without_the_operators_key_says_what_would_vouch(
        golden_bundle: Path) -> None:
    seen = at_terminal("verify", str(golden_bundle))
    seen.assert_no_traceback()
    assert seen.code == 3
    assert "unvouched" in seen.text and "images/index.json" in seen.text
    # The table wraps its cells at the terminal's width: the fix, in its pieces.
    assert "give --trust-key with the" in seen.text and "--trust-signer with your own" \
        in seen.text
    assert seen.lines[-1].startswith("error: ") and "failed verification" in seen.lines[-1]


def test_verify_at_a_terminal_lists_the_damaged_file(golden_bundle: Path,
                                                     tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    (bundle / AGENT).write_bytes(b"not the agent")
    seen = at_terminal("verify", str(bundle))
    seen.assert_no_traceback()
    assert seen.code == 3
    assert "problem(s) in" in seen.text and "elastic-agent-9.0.0-linux-x86_64" in seen.text
    assert seen.lines[-1].startswith("error: ") and "failed verification" in seen.lines[-1]


def test_export_image_at_a_terminal(golden_bundle: Path, operator_key: Path,
                                    tmp_path: Path) -> None:
    seen = at_terminal("export-image", str(golden_bundle), "--platform", "arm64", "-o",
                       str(tmp_path / "registry.tar"), "--trust-key", str(operator_key))
    seen.assert_no_traceback()
    assert seen.code == 0, seen.text
    assert seen.lines[-1].startswith(f"wrote {tmp_path / 'registry.tar'}")
    assert "(linux/arm64" in seen.lines[-1]


@pytest.fixture
def engine_env(dockerd: Dockerd) -> dict[str, str]:
    return {"DOCKER_HOST": dockerd.env()["DOCKER_HOST"]}


def test_load_at_a_terminal_into_every_target(golden_bundle: Path, engine_env: dict[str, str],
                                             registry: DockerRegistry, operator_key: Path,
                                             tmp_path: Path) -> None:
    port = free_port()
    name = f"airgap-test-{port}"
    seen = at_terminal(
        "load", str(golden_bundle), "--trust-key", str(operator_key), "--docker",
        "--platform", "linux/amd64", "--run", "--network", "host", "--port", str(port),
        "--name", name, "--registry", f"http://{registry.host}/terminal", "--insecure",
        "--artifacts", str(tmp_path / "served"), "--config", str(tmp_path / "settings"),
        "--registry-url", f"http://127.0.0.1:{port}",
        "--artifacts-url", "http://127.0.0.1:8000/downloads/", env=engine_env)
    try:
        seen.assert_no_traceback()
        assert seen.code == 0, seen.text
        text = seen.text
        for step in ("verified", "docker", "pushed", "running", "artifacts", "settings"):
            assert re.search(rf"^\s+{step}\s", text, re.MULTILINE), step
        assert f"at http://127.0.0.1:{port}" in text and "reachable only" not in text
        assert "docker load" in seen.raw and "storing the layers" in seen.raw
    finally:
        subprocess.run(["docker", "rm", "-f", name], env={**os.environ, **engine_env},
                       capture_output=True)


def test_serve_at_a_terminal_stops_on_ctrl_c(golden_bundle: Path) -> None:
    port = free_port()

    def stop(child: pexpect.spawn) -> None:
        child.expect("agent.download.sourceURI", timeout=60)
        child.sendintr()

    seen = at_terminal("serve", str(golden_bundle), "--port", str(port), when=stop)
    seen.assert_no_traceback()
    assert seen.code == 0
    assert f"http://127.0.0.1:{port}/downloads/" in seen.text


def test_sigterm_at_a_terminal_exits_143(golden_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    with (bundle / "downloads" / "big.tar.gz").open("wb") as big:
        big.truncate(4 << 30)  # holes: seconds of hashing, no disk used

    def terminate(child: pexpect.spawn) -> None:
        child.expect("hashing", timeout=60)  # the live line of the hashing
        child.kill(signal.SIGTERM)

    seen = at_terminal("verify", str(bundle), "--jobs", "1", when=terminate)
    seen.assert_no_traceback()
    assert seen.code == 143
    assert seen.lines[-1].startswith("terminated: ") and "nothing was changed" in \
        seen.lines[-1]

