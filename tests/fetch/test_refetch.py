"""A complete bundle stays complete whatever a later fetch does: it fails, it is killed,
it changes the plan; only its commit changes the bundle, and verify says what it sees."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from airgap.bundle.lock import writer
from airgap.bundle.staging import Staging, recover
from tests.conftest import REPO, ManifestMaker, make_wheelhouse, site_manifest
from tests.peers.artifacts import ArtifactServer
from tests.peers.epr import EprServer
from tests.peers.files import Fault
from tests.peers.gpgkeys import SigningKey
from tests.peers.net import wait_until
from tests.peers.registry_front import RegistryFront
from tests.terminal import in_pipe, signal_when


def coreutils_agrees(bundle: Path) -> bool:
    return subprocess.run(["sha512sum", "--check", "--strict", "--quiet", "SHA512SUMS"],
                          cwd=bundle, capture_output=True).returncode == 0


def assert_intact(bundle: Path, operator_key: Path) -> None:
    """The bundle checks out with sha512sum, and with airgap verify and the operator's key."""
    assert coreutils_agrees(bundle)
    verified = in_pipe("verify", str(bundle), "--trust-key", str(operator_key))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def signing(operator: SigningKey) -> tuple[str, ...]:
    """The options that sign SHA512SUMS with the operator's key."""
    return ("--sign-with", operator.fingerprint, "--gnupg-home", str(operator.home))


def signed_fetch(manifest: Path, bundle: Path, operator: SigningKey) -> None:
    result = in_pipe("fetch", str(manifest), "-o", str(bundle), *signing(operator))
    assert result.returncode == 0, result.stderr


def edited(manifest: Path, **changes: object) -> Path:
    document = yaml.safe_load(manifest.read_text())
    document.update(changes)
    manifest.write_text(yaml.safe_dump(document))
    return manifest


def test_a_failed_refetch_leaves_the_signed_bundle_as_it_was(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, operator: SigningKey,
        operator_key: Path, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    bundle = tmp_path / "bundle"
    signed_fetch(manifest, bundle, operator)
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    # A new stack version Elastic has not published: the fetch fails...
    edited(manifest, stack={"version": "9.0.1"})
    result = in_pipe("fetch", str(manifest), "-o", str(bundle))
    assert result.returncode == 1 and "no such image tag" in result.stderr
    # ... and the bundle is exactly what it was, signature included.
    after = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()
             and ".airgap" not in p.relative_to(bundle).as_posix()}
    assert after == {p: b for p, b in before.items()}
    assert_intact(bundle, operator_key)


def test_a_killed_refetch_keeps_the_bundle_and_the_next_run_goes_on(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, operator: SigningKey,
        operator_key: Path, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             integrations=["system"])
    bundle = tmp_path / "bundle"
    signed_fetch(manifest, bundle, operator)
    # The next month: one more integration, whose package comes slowly.
    epr_server.add("apache", "1.2.0", payload=4 << 20)
    epr_server.faults.inject("*apache*.zip", Fault("slow", times=-1, delay=0.05))
    edited(manifest, integrations=["system", "apache"])
    process = subprocess.Popen([sys.executable, "-m", "airgap", "fetch", str(manifest), "-o",
                                str(bundle), *signing(operator)], cwd=REPO,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    staged = Staging(bundle).path("packages/apache/apache-1.2.0.zip.part")
    signal_when(process, lambda: staged.is_file() and staged.stat().st_size > 0,
                signal.SIGKILL)
    process.communicate(timeout=60)
    # Killed mid-download: the bundle still verifies, and says what waits beside it.
    verified = in_pipe("verify", str(bundle), "--trust-key", str(operator_key))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "an unfinished fetch left" in verified.stderr
    assert coreutils_agrees(bundle)
    assert not (bundle / "packages" / "apache").exists()
    # The next run resumes the partial download and commits.
    epr_server.faults.clear()
    again = in_pipe("fetch", str(manifest), "-o", str(bundle), *signing(operator))
    assert again.returncode == 0, again.stderr
    assert "resumed" in again.stderr
    assert (bundle / "packages/apache/apache-1.2.0.zip").is_file()
    assert not (bundle / ".airgap-next").exists()
    assert in_pipe("verify", str(bundle), "--trust-key", str(operator_key)).returncode == 0
    assert coreutils_agrees(bundle)


def test_a_smaller_plan_removes_what_it_drops_only_at_its_commit(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, operator: SigningKey,
        operator_key: Path, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             integrations=["system", "nginx"])
    bundle = tmp_path / "bundle"
    signed_fetch(manifest, bundle, operator)
    assert (bundle / "packages/nginx").is_dir()
    edited(manifest, integrations=["system"])
    result = in_pipe("fetch", str(manifest), "-o", str(bundle), *signing(operator))
    assert result.returncode == 0, result.stderr
    assert "removed packages/nginx/nginx-2.0.0.zip (no longer in the manifest)" in result.stdout
    assert not (bundle / "packages/nginx").exists()
    assert in_pipe("verify", str(bundle), "--trust-key", str(operator_key)).returncode == 0
    same = in_pipe("fetch", str(manifest), "-o", str(bundle), *signing(operator))
    assert "unchanged: it already held exactly this" in same.stdout


def test_verify_refuses_a_bundle_a_fetch_is_writing(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=4 << 20)
    artifact_server.faults.inject("*.tar.gz", Fault("slow", times=-1, delay=0.1))
    bundle = tmp_path / "bundle"
    process = subprocess.Popen([sys.executable, "-m", "airgap", "fetch", str(manifest), "-o",
                                str(bundle), "--quiet"], cwd=REPO, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    try:
        wait_until(lambda: writer(bundle) is not None, 60, "the fetch holding the bundle")
        result = in_pipe("verify", str(bundle))
        assert result.returncode == 1
        assert f"{bundle}: a fetch (pid {process.pid}) is writing it" in result.stderr
        assert "problem" not in result.stdout
    finally:
        process.kill()
        process.wait()


def test_verify_says_a_folder_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    result = in_pipe("verify", str(tmp_path / "photos"))
    assert result.returncode == 2
    assert "is not an airgap bundle" in result.stderr


def test_a_commit_cut_short_is_reported_then_finished_by_the_next_run(
        golden_bundle: Path, operator_key: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(golden_bundle, bundle)
    staging = Staging(bundle)
    # What a fetch killed during its commit leaves: a journal, and some files not moved.
    nginx = "packages/nginx/nginx-2.0.0.zip"
    staging.path(nginx).parent.mkdir(parents=True)
    shutil.copyfile(bundle / nginx, staging.path(nginx))
    staging.path("COMMIT").write_text('{"moves": ["packages/nginx/nginx-2.0.0.zip"], '
                                      '"removals": []}\n')
    result = in_pipe("verify", str(bundle))
    assert result.returncode == 3
    assert "a fetch was stopped while it put its new files in place" in result.stdout
    assert recover(bundle)
    assert not staging.folder.exists()
    assert in_pipe("verify", str(bundle), "--trust-key", str(operator_key)).returncode == 0


def test_a_fetch_without_the_wheelhouse_says_it_was_not_asked_for(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    bundle = tmp_path / "bundle"
    wheelhouse = make_wheelhouse(tmp_path / "airgap-0.1.0-wheelhouse")
    first = in_pipe("fetch", str(manifest), "-o", str(bundle), "--with-tool", str(wheelhouse))
    assert first.returncode == 0, first.stderr
    again = in_pipe("fetch", str(manifest), "-o", str(bundle))
    assert again.returncode == 0, again.stderr
    # The wheelhouse goes because the option was not given, not because of the manifest.
    assert "removed tools/airgap-0.1.0-wheelhouse/install.sh (not asked for: --with-tool)" \
        in again.stdout
    assert "no longer in the manifest" not in again.stdout
    assert not (bundle / "tools").exists()


def test_a_refetch_repairs_a_file_of_the_bundle_that_no_longer_verifies(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, operator: SigningKey,
        operator_key: Path, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    bundle = tmp_path / "bundle"
    signed_fetch(manifest, bundle, operator)
    package = bundle / "packages/nginx/nginx-2.0.0.zip"
    package.write_bytes(package.read_bytes()[:-1] + b"!")  # rotted on the disk
    result = in_pipe("fetch", str(manifest), "-o", str(bundle), *signing(operator))
    assert result.returncode == 0, result.stderr
    assert "does not verify" in result.stderr and "downloading it again" in result.stderr
    # The good copy replaces the bad: the plan is the same, but the bundle was not.
    assert "unchanged" not in result.stdout
    assert_intact(bundle, operator_key)


def test_a_kept_signature_that_no_longer_verifies_is_fetched_again_not_the_binary(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, operator: SigningKey,
        operator_key: Path, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    bundle = tmp_path / "bundle"
    signed_fetch(manifest, bundle, operator)
    agent = "downloads/beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"
    other = "downloads/beats/filebeat/filebeat-9.0.0-linux-x86_64.tar.gz"
    # A signature still, and by the trusted key, but of another file: it reads as one.
    shutil.copyfile(bundle / f"{other}.asc", bundle / f"{agent}.asc")
    before = len(artifact_server.faults.requests(f"*/{agent.rsplit('/', 1)[1]}",
                                                 method="GET"))
    result = in_pipe("fetch", str(manifest), "-o", str(bundle), *signing(operator))
    assert result.returncode == 0, result.stderr
    assert f"{agent}: its kept .sha512 or .asc does not vouch for it" in result.stderr
    assert f"fetching {agent}.sha512 and {agent}.asc again" in result.stderr
    # The binary was not downloaded again for it: only its companions were.
    assert len(artifact_server.faults.requests(f"*/{agent.rsplit('/', 1)[1]}",
                                               method="GET")) == before
    assert (bundle / f"{agent}.asc").read_bytes() == \
        (artifact_server.root / agent.removeprefix("downloads/")).with_name(
            agent.rsplit("/", 1)[1] + ".asc").read_bytes()
    assert_intact(bundle, operator_key)
