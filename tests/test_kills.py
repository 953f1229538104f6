"""Kills at random points, a full disk, two fetches at once: nothing outside the bundle is
written, a complete bundle stays complete, and the same command run again finishes.

Each run is ``airgap`` in a process of its own, killed with SIGKILL (which no clean-up
survives) at a point drawn from a seeded generator: the seed is in the test's id, so a
failure can be replayed.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airgap.cli import main
from tests.conftest import (
    TEST_REPOSITORY,
    ManifestMaker,
    grown_tailored_site,
    require_root,
    snapshot,
    start_airgap,
)
from tests.fetch.test_run import site_manifest
from tests.peers.artifacts import ArtifactServer
from tests.peers.epr import EprServer
from tests.peers.files import Fault
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage
from tests.peers.net import wait_until
from tests.peers.processes import Dockerd, DockerRegistry
from tests.peers.registry_front import RegistryFront


def kill_after(process: subprocess.Popen[str], delay: float) -> None:
    """SIGKILL ``process`` after ``delay`` seconds; fail if it ended before (then the test
    would not test a kill)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=delay)
    assert process.poll() is None, \
        f"it ended ({process.returncode}) before the kill at {delay:.2f} s"
    process.send_signal(signal.SIGKILL)
    process.wait()


def orphans(pid: int) -> list[str]:
    """Processes (gpg) still working for the killed airgap ``pid``, by their command line."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (line := (proc / "cmdline").read_bytes()) and \
                    f"airgap-gnupg-{pid}-".encode() in line:
                found.append(line.replace(b"\0", b" ").decode(errors="replace"))
    return found


@pytest.fixture
def site(make_manifest: ManifestMaker, registry_front: RegistryFront,
         artifact_server: ArtifactServer, epr_server: EprServer) -> Path:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=1_000_000, platforms={"arch": ["x86_64"]},
                             integrations=["nginx", "fleet_server"])
    # Slow enough for a kill to land in the middle of a transfer as often as between.
    artifact_server.faults.inject("*.tar.gz", Fault("slow", times=-1, delay=0.1))
    return manifest


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fetch_killed_at_a_random_point_resumes_and_leaves_nothing_outside(
        seed: int, site: Path, tmp_path: Path, signer_public_key: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    delay = random.Random(seed).uniform(0.5, 1.6)  # the fetch takes about two seconds
    work = tmp_path / "work"
    temporary = tmp_path / "tmp"
    work.mkdir()
    temporary.mkdir()
    bundle = work / "bundle"
    process = start_airgap("fetch", str(site), "-o", str(bundle), "--quiet",
                           env={"TMPDIR": str(temporary)}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    kill_after(process, delay)
    assert [p.name for p in work.iterdir()] in ([], ["bundle"]), "written outside the bundle"
    again = start_airgap("fetch", str(site), "-o", str(bundle), "--quiet",
                         env={"TMPDIR": str(temporary)}, stderr=subprocess.PIPE)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    # Every file intact and every signature good: only the image waits for an operator's key.
    assert main(["verify", str(bundle), "--trust-signer", str(signer_public_key), "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert [(p["path"], p["kind"]) for p in report["problems"]] == [("images/index.json",
                                                                     "unvouched")]
    assert subprocess.run(["sha512sum", "--check", "--quiet", "SHA512SUMS"],
                          cwd=bundle).returncode == 0
    # The GnuPG home the killed run left is removed by the next one.
    assert list(temporary.glob("airgap-gnupg-*")) == []


def test_killed_reruns_of_a_complete_bundle_lose_nothing(
        site: Path, tmp_path: Path, make_manifest: ManifestMaker,
        registry_front: RegistryFront, artifact_server: ArtifactServer,
        epr_server: EprServer) -> None:
    bundle = tmp_path / "bundle"
    assert main(["fetch", str(site), "-o", str(bundle), "--quiet"]) == 0
    before = snapshot(bundle)
    # A rerun with a manifest that wants more (slow downloads), killed half-way...
    more = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                         size=1_000_000, name="more.yaml", platforms={"arch": ["x86_64"]},
                         integrations=["nginx", "fleet_server", "system", "endpoint"])
    for delay in (0.6, 1.2):
        process = start_airgap("fetch", str(more), "-o", str(bundle), "--quiet",
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kill_after(process, delay)
    # ...then the first manifest again: the same bundle, file for file.
    assert main(["fetch", str(site), "-o", str(bundle), "--quiet"]) == 0
    after = snapshot(bundle)
    assert set(after) == set(before)
    assert {p: h for p, h in after.items() if p not in ("bundle.json", "SHA512SUMS")} == \
        {p: h for p, h in before.items() if p not in ("bundle.json", "SHA512SUMS")}


@pytest.mark.parametrize("moment", ["before", "during"])
def test_a_tailored_fetch_killed_as_it_composes_leaves_the_bundle_and_finishes_when_run_again(
        moment: str, registry: DockerRegistry, epr_server: EprServer, signer_public_key: Path,
        server_images: dict[str, TestImage], operator: SigningKey, operator_key: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle, more = grown_tailored_site(tmp_path / "site", registry, epr_server,
                                       signer_public_key, operator)
    before = snapshot(bundle)
    staged = bundle / ".airgap-next"
    command = ("fetch", str(more), "-o", str(bundle), "--quiet", "--sign-with",
               operator.fingerprint, "--gnupg-home", str(operator.home))
    process = start_airgap(*command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Just before: the last, large package still on its way, nothing composed; during: the
    # layer being written. The run is held still there, so that the kill lands in it.
    wanted = "packages/kafka/kafka-1.0.0.zip.part" if moment == "before" else \
        "images/blobs/sha256/.layer.*.part"
    wait_until(lambda: any(staged.glob(wanted)) or process.poll() is not None, 120,
               f"the fetch {moment} composing")
    process.send_signal(signal.SIGSTOP)
    assert any(staged.glob(wanted)), f"it was no longer {moment} composing"
    if moment == "before":
        assert not any(staged.glob("images/blobs/sha256/.layer.*"))
    kill_after(process, 0)
    assert {p: h for p, h in snapshot(bundle).items()
            if not p.startswith((".airgap-next/", ".airgap.lock"))} == before
    assert main(["verify", str(bundle), "--trust-key", str(operator_key), "--quiet"]) == 0
    again = start_airgap(*command, stderr=subprocess.PIPE)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert orphans(process.pid) == [], "the killed run's gpg still waits"
    assert not staged.exists()
    capsys.readouterr()
    assert main(["verify", str(bundle), "--trust-key", str(operator_key), "--json"]) == 0
    described = json.loads((bundle / "bundle.json").read_text())["image"]["tailored"]
    assert "packages/kafka/kafka-1.0.0.zip" in described["packages"]


def test_two_fetches_into_one_bundle_one_is_refused(site: Path, tmp_path: Path,
                                                    artifact_server: ArtifactServer) -> None:
    artifact_server.faults.clear()  # slower: the first is still at work when the second starts
    artifact_server.faults.inject("*.tar.gz", Fault("slow", times=-1, delay=0.3))
    work = tmp_path / "work"
    work.mkdir()
    bundle = work / "bundle"
    first = start_airgap("fetch", str(site), "-o", str(bundle), "--quiet",
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (bundle / ".airgap.lock").exists():
            time.sleep(0.02)
        time.sleep(0.2)
        second = start_airgap("fetch", str(site), "-o", str(bundle), "--quiet",
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, refused = second.communicate(timeout=60)
    finally:
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 1, refused
    assert f"another airgap (pid {first.pid}) is writing" in refused
    assert str(bundle) in refused
    assert [p.name for p in work.iterdir()] == ["bundle"]


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs: too small for the bundle."""
    require_root("mounting a tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_an_error_naming_the_file_and_a_rerun_with_room_finishes(
        site: Path, full_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
        ) -> None:
    bundle = full_disk / "bundle"
    assert main(["fetch", str(site), "-o", str(bundle), "--quiet"]) == 1
    err = capsys.readouterr().err
    # Asked for its sizes first, the sources say the fetch cannot fit: refused before any
    # download (a disk that fills up meanwhile: tests/fetch/test_preflight.py).
    assert "not enough space on tmpfs" in err and str(bundle) in err, err
    assert "Traceback" not in err
    assert list(full_disk.iterdir()) == []  # nothing written: the folder it made is gone
    subprocess.run(["mount", "-o", "remount,size=200m", str(full_disk)], check=True)
    assert main(["fetch", str(site), "-o", str(bundle), "--quiet"]) == 0
    assert subprocess.run(["sha512sum", "--check", "--quiet", "SHA512SUMS"],
                          cwd=bundle).returncode == 0


@pytest.mark.parametrize("seed", [4, 5])
def test_push_killed_at_a_random_point_finishes_when_run_again(
        seed: int, golden_bundle: Path, operator_key: Path,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # The kill comes after a random number of blob uploads reached the registry.
    uploads = random.Random(seed).randint(1, 3)
    registry = DockerRegistry(tmp_path_factory.mktemp("kill-registry"), access_log=True).start()
    try:
        before = snapshot(golden_bundle)
        target = f"{registry.host}/mirror"
        command = ("load", str(golden_bundle), "--registry", target, "--insecure",
                   "--trust-key", str(operator_key), "--quiet")
        process = start_airgap(*command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline and len(
                [r for r in registry.requests() if r[0] == "PUT" and "/blobs/uploads/" in r[1]]
        ) < uploads:
            time.sleep(0.01)
        kill_after(process, 0)
        again = start_airgap(*command, stderr=subprocess.PIPE)
        _, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
        assert orphans(process.pid) == [], "the killed run's gpg still waits"
        assert snapshot(golden_bundle) == before, "the push wrote into the bundle"
        raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                              f"docker://{target}/{TEST_REPOSITORY}:9.0.0"],
                             capture_output=True, check=True).stdout
        assert json.loads(raw)["manifests"]
    finally:
        registry.stop()


@pytest.mark.parametrize("seed", [6, 7])
def test_docker_load_killed_at_a_random_point_loads_when_run_again(
        seed: int, golden_bundle: Path, dockerd: Dockerd, operator_key: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    before = snapshot(golden_bundle)
    command = ("load", str(golden_bundle), "--docker", "--trust-key", str(operator_key),
               "--tag", f"killed.local/epr:{seed}", "--quiet")
    env = {"DOCKER_HOST": dockerd.host}
    killed = start_airgap(*command, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    # Once its verification has begun (its GnuPG home is there), the image streams to the
    # engine meanwhile: the kill lands a random moment into that.
    homes = Path(tempfile.gettempdir())
    wait_until(lambda: any(homes.glob(f"airgap-gnupg-{killed.pid}-*")) or
               killed.poll() is not None, 60, "the load verifying")
    kill_after(killed, random.Random(seed).uniform(0.0, 0.1))
    again = start_airgap(*command, env=env, stderr=subprocess.PIPE)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert orphans(killed.pid) == [], "the killed run's gpg still waits"
    assert snapshot(golden_bundle) == before
    listed = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
                            env=dockerd.env(), capture_output=True, text=True).stdout
    assert f"killed.local/epr:{seed}" in listed
