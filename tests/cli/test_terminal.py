"""Every command at a real terminal: a pseudo-terminal, its screen rendered by pyte.

What a person sees is checked: the exit code, the last lines on the screen, and that no
traceback ever appears. The live lines are drawn while the work runs and cleared at its
end: what they showed (speeds, totals) is read from the bytes the command drew.
"""

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

import pexpect
import pytest

from airgap.carry.index import INDEX, VolumeIndex
from tests.carrying import Pair
from tests.conftest import (
    ManifestMaker,
    grown_tailored_site,
    publish_tailored_packages,
    site_manifest,
    snapshot,
    tailored_manifest,
)
from tests.peers.artifacts import ArtifactServer
from tests.peers.epr import EprServer
from tests.peers.files import Fault
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage
from tests.peers.net import free_port
from tests.peers.processes import Dockerd, DockerRegistry
from tests.peers.registry_front import RegistryFront
from tests.syscalls import slow_open
from tests.terminal import Seen, at_terminal, in_pipe

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
    # Each phase ends in the terms it counts in, every file it brings done; and the table's
    # files add up to the last line's.
    ends = {m[1]: (m[2], m[3]) for m in (re.fullmatch(
        r"(image|artifacts|packages): done, (\d+)/(\d+) files, .*", line)
        for line in seen.lines) if m}
    assert set(ends) == {"image", "artifacts", "packages"}, seen.text
    assert all(done == planned for done, planned in ends.values()), ends
    assert ends["artifacts"][1] == "24" and ends["packages"][1] == "6"  # with companions
    files = [int(m[1]) for m in (re.search(r"│ +(\d+) │", line) for line in seen.lines
                                 if line.startswith("│")) if m]
    total = re.match(r"done: (\d+) files", seen.lines[-1])
    assert total and files and sum(files) == int(total[1]), seen.text


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


TAILORED = "docker.elastic.co/package-registry/distribution:tailored-9.0.0"


def test_a_tailored_fetch_at_a_terminal_shows_it_composed(
        registry: DockerRegistry, epr_server: EprServer, signer_public_key: Path,
        server_images: dict[str, TestImage], operator: SigningKey, operator_key: Path,
        tmp_path: Path) -> None:
    publish_tailored_packages(epr_server)
    manifest = tailored_manifest(tmp_path / "site.yaml", registry, epr_server,
                                 signer_public_key, "oci")
    bundle = tmp_path / "bundle"
    seen = at_terminal("fetch", str(manifest), "-o", str(bundle), "--sign-with",
                       operator.fingerprint, "--gnupg-home", str(operator.home))
    seen.assert_no_traceback()
    assert seen.code == 0, seen.text
    text = seen.text
    # The pre-flight counts what composing will write; the compose phase has its live line
    # while it runs, then its item (the layer, what it is) and its end stay on the screen.
    assert re.search(r"^check: .* to download and compose$", text, re.MULTILINE), text
    assert re.search(r"compose\s+[━╸╺]+", seen.drawn)
    assert re.search(rf"✓ done +packages layer of {re.escape(TAILORED)} \(8 files\) .*"
                     r"composed: sha256:[0-9a-f]{12}, diff ID sha256:", text), text
    assert re.search(r"^compose: done", text, re.MULTILINE), text
    assert "tailored image (linux/amd64" in text  # the summary's first part
    assert seen.lines[-1].startswith("done: ") and seen.lines[-1].endswith("(signed)")
    assert in_pipe("verify", str(bundle), "--trust-key", str(operator_key)).returncode == 0


def test_ctrl_c_while_composing_leaves_the_bundle_as_it_was_and_a_rerun_finishes(
        registry: DockerRegistry, epr_server: EprServer, signer_public_key: Path,
        server_images: dict[str, TestImage], operator: SigningKey, operator_key: Path,
        tmp_path: Path) -> None:
    bundle, more = grown_tailored_site(tmp_path / "site", registry, epr_server,
                                       signer_public_key, operator)
    before = snapshot(bundle)
    composing = bundle / ".airgap-next/images/blobs/sha256"

    def interrupt_while_composing(child: pexpect.spawn) -> None:
        deadline = time.monotonic() + 120
        while not list(composing.glob(".layer.*.part")):  # the layer being written
            assert time.monotonic() < deadline, "never composed"
            with contextlib.suppress(pexpect.TIMEOUT):
                child.read_nonblocking(65536, timeout=0.005)
        # Held still for the moment, so that the Ctrl-C lands in the middle of composing.
        os.kill(child.pid, signal.SIGSTOP)
        try:
            assert list(composing.glob(".layer.*.part")), "composed before the Ctrl-C"
            child.sendintr()
        finally:
            os.kill(child.pid, signal.SIGCONT)

    seen = at_terminal("fetch", str(more), "-o", str(bundle), "--sign-with",
                       operator.fingerprint, "--gnupg-home", str(operator.home),
                       when=interrupt_while_composing)
    seen.assert_no_traceback()
    assert seen.code == 130, seen.text
    assert seen.lines[-1].startswith("interrupted: ") and \
        "run the same command again" in seen.lines[-1]
    # The bundle as it was, file for file; what the run got waits in .airgap-next/, and no
    # half-written layer with it.
    assert {p: h for p, h in snapshot(bundle).items()
            if not p.startswith((".airgap-next/", ".airgap.lock"))} == before
    assert not list(composing.glob(".layer.*"))
    assert in_pipe("verify", str(bundle), "--trust-key", str(operator_key)).returncode == 0
    # The same command again finishes, with the new package in the image.
    again = in_pipe("fetch", str(more), "-o", str(bundle), "--sign-with", operator.fingerprint,
                    "--gnupg-home", str(operator.home), timeout=300)
    assert again.returncode == 0, again.stderr
    assert "kept" in again.stderr  # the packages the interrupted run got were not fetched again
    verified = in_pipe("verify", str(bundle), "--trust-key", str(operator_key))
    assert verified.returncode == 0, verified.stdout
    layer = json.loads((bundle / "bundle.json").read_text())["image"]["tailored"]
    assert "packages/kafka/kafka-1.0.0.zip" in layer["packages"]
    assert not (bundle / ".airgap-next").exists()


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
        # (whether the engine's storing is drawn depends on how long it takes: the log
        # line of it is asserted in tests/load/test_checks.py)
        assert "docker load" in seen.raw
    finally:
        subprocess.run(["docker", "rm", "-f", name], env={**os.environ, **engine_env},
                       capture_output=True)


def test_serve_at_a_terminal_stops_on_ctrl_c(golden_bundle: Path, operator_key: Path) -> None:
    port = free_port()

    def stop(child: pexpect.spawn) -> None:
        child.expect("agent.download.sourceURI", timeout=60)
        child.sendintr()

    seen = at_terminal("serve", str(golden_bundle), "--port", str(port), "--trust-key",
                       str(operator_key), when=stop)
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



def test_sighup_at_a_terminal_exits_129_with_one_line(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=8 << 20)
    artifact_server.faults.inject("*.tar.gz", Fault("slow", times=-1, delay=0.05))

    def hang_up(child: pexpect.spawn) -> None:
        child.expect("fetched ", timeout=120)
        child.kill(signal.SIGHUP)  # the terminal (or the ssh session) went away

    seen = at_terminal("fetch", str(manifest), "-o", str(tmp_path / "bundle"), when=hang_up)
    seen.assert_no_traceback()
    assert seen.code == 129
    assert seen.lines[-1].startswith("hung up: ") and "run the same command again" in \
        seen.lines[-1]
    assert sum(line.startswith("hung up") for line in seen.lines) == 1


# -- merge, split and join at a terminal, and Ctrl-C in each ----------------------------------


def drawing_until(ready: Callable[[], bool], timeout: float = 60
                  ) -> Callable[[pexpect.spawn], None]:
    """What a person does: watch the screen (its output is read all along) until
    ``ready()``, then press Ctrl-C."""
    def interrupt(child: pexpect.spawn) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert time.monotonic() < deadline, "never ready for Ctrl-C"
            assert child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.05) == 0, \
                "it ended before Ctrl-C"
        time.sleep(0.3)
        child.sendintr()
    return interrupt


def last_line(seen: Seen) -> str:
    """The last line airgap drew (strace 6.1 may add one of its own as a delayed thread
    ends with the process)."""
    return [line for line in seen.lines if "strace: " not in line][-1]


def test_merge_at_a_terminal_and_ctrl_c_while_it_verifies_the_new_bundle(
        pair: Pair, tmp_path: Path) -> None:
    new = (tmp_path / "new").resolve()
    command = ("merge", str(pair.base), str(pair.delta), "-o", str(new))
    # Its verification waits on NEW's bundle.json (a slow disk): Ctrl-C lands in it.
    seen = at_terminal(*command, when=drawing_until(lambda: (new / "SHA512SUMS").exists()),
                       prefix=slow_open(new / "bundle.json", 5))
    seen.assert_no_traceback()
    assert seen.code == 130
    assert last_line(seen) == (f"interrupted: nothing is left in {new}: what was written was "
                              f"removed; {pair.base} and {pair.delta} are as they were: run "
                              "the same command again")
    assert not new.exists()

    seen = at_terminal(*command)
    seen.assert_no_traceback()
    assert seen.code == 0, seen.text
    # The facts, as a table whose cells wrap at the terminal's width (the paths are long).
    assert re.search(r"^  merged +/", seen.text, re.MULTILINE), seen.text
    flat = " ".join(seen.text.split())
    assert "the bundle sha512:" in flat and "files of the delta" in flat
    assert re.search(r"^  files +\d+ copied$", seen.text, re.MULTILINE)
    # Without --trust-key: integrity only, the signatures counted in one line each time.
    assert "unvouched" not in seen.text and "unvouched" not in seen.drawn
    assert "signatures: " in seen.text and "checked, signer not vouched for (give " \
        "--trust-key to check)" in seen.text
    assert seen.lines[-1].startswith(f"intact: {new}: ")


def test_split_at_a_terminal_and_ctrl_c_while_it_writes(golden_bundle: Path,
                                                       tmp_path: Path) -> None:
    parts = (tmp_path / "parts").resolve()
    command = ("split", str(golden_bundle), "-o", str(parts), "--size", "1MiB")
    seen = at_terminal(*command, "--jobs", "2", when=drawing_until(
        lambda: (parts / "001").is_dir()), prefix=slow_open(golden_bundle.resolve() / AGENT, 5))
    seen.assert_no_traceback()
    assert seen.code == 130
    assert last_line(seen) == (f"interrupted: no volume is left in {parts}: what was written "
                              f"was removed; {golden_bundle} is as it was: run the same "
                              "command again")
    assert not parts.exists()

    seen = at_terminal(*command)
    seen.assert_no_traceback()
    assert seen.code == 0, seen.text
    assert re.search(r"\d+ volume\(s\) of the bundle sha512:[0-9a-f]{32}", seen.text)
    assert f"{parts}/001" in seen.text
    assert "the index is NOT signed (give --sign-with)" in seen.text
    assert seen.lines[-1] == "check each volume where it arrives: airgap verify VOLUME " \
                             "--trust-key KEY"


def test_join_at_a_terminal_ctrl_c_then_the_same_command_goes_on(
        golden_volumes: Path, golden_bundle: Path, tmp_path: Path) -> None:
    folders = sorted(p for p in golden_volumes.iterdir() if p.is_dir())
    index = VolumeIndex.from_bytes((folders[0] / INDEX).read_bytes(), "index")
    joined = (tmp_path / "joined").resolve()
    command = ("join", *map(str, folders), "-o", str(joined))
    parts = joined / ".airgap-join" / "parts"
    slow = folders[2].resolve() / index.of_volume(3)[0].name
    seen = at_terminal(*command, "--jobs", "2", when=drawing_until(
        lambda: parts.is_dir() and len(list(parts.iterdir())) == len(index.files())),
        prefix=slow_open(slow, 5))
    seen.assert_no_traceback()
    assert seen.code == 130
    last = last_line(seen)
    assert last.startswith("interrupted: ") and "files done" not in last, last
    assert f"kept in {joined}; volume(s) 3 still to join: run the same command again to go " \
           "on" in last

    seen = at_terminal(*command)
    seen.assert_no_traceback()
    assert seen.code == 0, seen.text
    assert f"{folders[0]} (volume 1 of {len(folders)}) is joined already: skipped" in seen.text
    others = ", ".join(str(n) for n in range(1, len(folders) + 1) if n != 3)
    assert f"joined volume(s) 3 ({others} joined already)" in seen.text
    assert seen.lines[-1].startswith(f"intact: {joined}: ")
    assert (joined / "SHA512SUMS").read_bytes() == (golden_bundle / "SHA512SUMS").read_bytes()
