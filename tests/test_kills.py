"""Kills at random points, a full disk, two fetches at once: nothing outside the bundle is
written, a complete bundle stays complete, and the same command run again finishes. Merge,
split and join are killed (and signalled) at exact points through strace
(tests/syscalls.py).

Each run is ``airgap`` in a process of its own, killed with SIGKILL (which no clean-up
survives) at a point drawn from a seeded generator: the seed is in the test's id, so a
failure can be replayed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airgap.carry.index import INDEX, VolumeIndex
from airgap.cli import main
from tests.carrying import Pair
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
from tests.syscalls import kill_at, slow_open, traced
from tests.terminal import in_pipe, piped, unstamped


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


# -- merge, split and join: killed, interrupted, or out of space ------------------------------


def volume_folders(parts: Path) -> list[Path]:
    return sorted(p for p in parts.iterdir() if p.is_dir())


def part_of(index: VolumeIndex, path: str) -> str:
    """The name a join fills ``path`` under in BUNDLE/.airgap-join/parts/."""
    return str(list(index.files()).index(path))


@pytest.mark.parametrize("where", ["first", "middle", "SHA512SUMS"])
def test_join_killed_while_it_puts_its_files_in_place_is_finished_when_run_again(
        where: str, golden_volumes: Path, golden_bundle: Path, tmp_path: Path) -> None:
    folders = volume_folders(golden_volumes)
    index = VolumeIndex.from_bytes((folders[0] / INDEX).read_bytes(), "index")
    files = [p for p in index.files() if p != "SHA512SUMS"]
    path = {"first": files[0], "middle": files[len(files) // 2], "SHA512SUMS": "SHA512SUMS"}
    joined = (tmp_path / "joined").resolve()
    command = ("join", *map(str, folders), "-o", str(joined))
    # SIGKILL as that file's part is renamed into place: the files before it are in place.
    part = joined / ".airgap-join" / "parts" / part_of(index, path[where])
    killed = in_pipe(*command, prefix=kill_at("rename", part))
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), killed.stderr
    assert part.exists() and not (joined / "SHA512SUMS").exists()
    assert (where == "first") != (joined / files[0]).exists()

    again = in_pipe(*command)
    assert again.returncode == 0, again.stderr
    assert f"(volume 1 of {len(folders)}) is joined already: skipped" in again.stderr
    assert "intact: " in again.stdout
    assert snapshot(joined) == snapshot(golden_bundle)


def test_merge_killed_while_it_verifies_new_is_finished_when_run_again(
        pair: Pair, operator_key: Path, tmp_path: Path) -> None:
    new = (tmp_path / "new").resolve()
    command = ("merge", str(pair.base), str(pair.delta), "-o", str(new))
    # SIGKILL at the first read of NEW's bundle.json: its verification has begun.
    killed = in_pipe(*command, prefix=kill_at("open", new / "bundle.json"))
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), killed.stderr
    assert (new / "SHA512SUMS").is_file()
    again = in_pipe(*command)
    assert again.returncode == 0, again.stderr
    assert "already in place" in again.stdout and "intact: " in again.stdout
    assert in_pipe("verify", str(new), "--trust-key", str(operator_key)).returncode == 0


def _signal_traced(process: subprocess.Popen[str], ready: Callable[[], bool],
                   signum: int) -> tuple[str, str]:
    """Send ``signum`` to the airgap strace runs once ``ready()``; what it wrote."""
    airgap = traced(process.pid)
    wait_until(lambda: ready() or process.poll() is not None, 60, "ready to be signalled")
    assert process.poll() is None, process.communicate()
    os.kill(airgap, signum)
    out, err = process.communicate(timeout=60)
    # strace 6.1 may say something of its own as a delayed thread ends with the process.
    return out, "\n".join(unstamped("".join(
        line for line in err.splitlines(keepends=True) if not line.startswith("strace: "))))


def test_sigterm_while_merge_verifies_new_removes_it_and_the_same_command_merges(
        pair: Pair, tmp_path: Path) -> None:
    new = (tmp_path / "new").resolve()
    command = ("merge", str(pair.base), str(pair.delta), "-o", str(new))
    process = piped(*command, prefix=slow_open(new / "bundle.json", 5))
    # SHA512SUMS is written last, right before NEW is verified (which waits on bundle.json).
    _, err = _signal_traced(process, lambda: (new / "SHA512SUMS").exists(), signal.SIGTERM)
    assert process.returncode == 143, err
    assert err.splitlines()[-1] == (
        f"terminated: nothing is left in {new}: what was written was removed; {pair.base} "
        f"and {pair.delta} are as they were: run the same command again")
    assert not new.exists()
    again = in_pipe(*command)
    assert again.returncode == 0, again.stderr
    assert "intact: " in again.stdout


def test_sigterm_during_a_join_keeps_what_was_copied_and_the_same_command_goes_on(
        golden_volumes: Path, golden_bundle: Path, tmp_path: Path) -> None:
    folders = volume_folders(golden_volumes)
    index = VolumeIndex.from_bytes((folders[0] / INDEX).read_bytes(), "index")
    slow = index.of_volume(2)[0]
    joined = (tmp_path / "joined").resolve()
    command = ("join", *map(str, folders), "-o", str(joined))
    process = piped(*command, "--jobs", "2",
                    prefix=slow_open(folders[1].resolve() / slow.name, 5))
    parts = joined / ".airgap-join" / "parts"
    _, err = _signal_traced(process, lambda: parts.is_dir() and len(list(parts.iterdir()))
                            == len(index.files()), signal.SIGTERM)
    assert process.returncode == 143, err
    last = err.splitlines()[-1]
    assert last.startswith("terminated: ") and "files done" not in last, last
    assert f"of the {len(index.of_volume(2))} pieces of volume 2 kept in {joined}" in last
    assert "volume(s) 2 still to join: run the same command again to go on" in last
    again = in_pipe(*command)
    assert again.returncode == 0, again.stderr
    assert f"(volume 1 of {len(folders)}) is joined already: skipped" in again.stderr
    assert snapshot(joined) == snapshot(golden_bundle)


def test_sigterm_during_a_split_removes_its_volumes_and_the_same_command_splits(
        golden_bundle: Path, tmp_path: Path) -> None:
    parts = (tmp_path / "parts").resolve()
    command = ("split", str(golden_bundle), "-o", str(parts), "--size", "1MiB")
    agent = golden_bundle.resolve() / "downloads/beats/elastic-agent" / \
        "elastic-agent-9.0.0-linux-x86_64.tar.gz"
    process = piped(*command, "--jobs", "2", prefix=slow_open(agent, 5))
    _, err = _signal_traced(process, lambda: (parts / "001").is_dir(), signal.SIGTERM)
    assert process.returncode == 143, err
    assert err.splitlines()[-1] == (
        f"terminated: no volume is left in {parts}: what was written was removed; "
        f"{golden_bundle} is as it was: run the same command again")
    assert not parts.exists()
    again = in_pipe(*command)
    assert again.returncode == 0, again.stderr
    assert len(volume_folders(parts)) >= 3


def test_a_full_disk_under_split_or_merge_says_what_was_removed_and_a_rerun_finishes(
        golden_bundle: Path, pair: Pair, full_disk: Path) -> None:
    parts = full_disk / "parts"
    split = in_pipe("split", str(golden_bundle), "-o", str(parts), "--size", "256KiB")
    assert split.returncode == 1, split.stderr
    err = " ".join(split.stderr.split())
    assert "No space left on device" in err and str(parts) in err
    assert "the disk is full: free space there, then run the same command again (the " \
           "volumes written so far were removed; the split writes" in err
    assert "resumes" not in err
    assert list(full_disk.iterdir()) == []
    new = full_disk / "new"
    merged = in_pipe("merge", str(pair.base), str(pair.delta), "-o", str(new))
    assert merged.returncode == 1, merged.stderr
    err = " ".join(merged.stderr.split())
    assert "the disk is full: free space there, then run the same command again " \
           f"({new} was removed; the new bundle takes up to" in err
    assert "resumes" not in err
    assert list(full_disk.iterdir()) == []
    subprocess.run(["mount", "-o", "remount,size=200m", str(full_disk)], check=True)
    assert in_pipe("split", str(golden_bundle), "-o", str(parts), "--size",
                   "256KiB").returncode == 0
    assert in_pipe("merge", str(pair.base), str(pair.delta), "-o", str(new)).returncode == 0
