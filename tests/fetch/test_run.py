"""airgap fetch end to end: image, artifacts and packages into one provable bundle."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from airgap.bundle import BundleLock, parse_sums
from airgap.bundle.staging import Staging
from airgap.errors import BundleError, ExitCode, NotFoundError, UsageError
from airgap.fetch.run import FetchResult, FetchSettings, fetch
from airgap.manifest import load_manifest, make_plan
from airgap.reporter import NullReporter
from tests.conftest import TEST_REPOSITORY, ManifestMaker, site_manifest, start_airgap
from tests.peers.artifacts import ArtifactServer
from tests.peers.defend import DefendServer
from tests.peers.epr import EprServer
from tests.peers.files import Fault
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage
from tests.peers.registry_front import RegistryFront
from tests.terminal import in_pipe

ELASTIC = "46095ACC8548582C1A2699A9D27D666CD88E42B4"


def run_fetch(manifest: Path, bundle: Path, **options: object) -> FetchResult:
    return fetch(FetchSettings(manifest=manifest, bundle=bundle, jobs=4, **options),  # type: ignore[arg-type]
                 NullReporter())


def files_of(bundle: Path) -> set[str]:
    return {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}


def test_fetch_writes_a_complete_bundle_that_coreutils_can_check(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, pushed_image: TestImage,
        signer: SigningKey, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    bundle = tmp_path / "bundle"
    result = run_fetch(manifest, bundle)

    check = subprocess.run(["sha512sum", "--check", "--strict", "SHA512SUMS"], cwd=bundle,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    sums, problems = parse_sums((bundle / "SHA512SUMS").read_text())
    assert problems == []
    assert set(sums) == files_of(bundle) - {"SHA512SUMS"}
    assert list(sums) == sorted(sums)
    assert not any(name.endswith(".part") for name in files_of(bundle))
    assert not (bundle / ".airgap.lock").exists()

    description = json.loads((bundle / "bundle.json").read_text())
    assert description["format"] == 2 and description["tool"]["name"] == "airgap"
    items = {i["path"]: i for i in description["items"]}
    assert set(items) == set(sums) - {"bundle.json"}
    for path, item in items.items():
        assert item["sha512"] == sums[path] and item["size"] == (bundle / path).stat().st_size
    assert description["manifest"]["given"]["integrations"] == ["system", "nginx",
                                                                "fleet_server"]
    assert description["manifest"]["resolved"]["packages"] == {
        "system": "2.1.0", "nginx": "2.0.0", "fleet_server": "1.6.0"}
    image = description["image"]
    assert image["upstream_digest"] == pushed_image.index_digest
    assert {p: v["manifest"] for p, v in image["platforms"].items()} == pushed_image.manifests
    assert image["reference"] == f"docker.elastic.co/{TEST_REPOSITORY}:9.0.0"
    assert {k["fingerprint"] for k in description["keys"]} == {ELASTIC, signer.fingerprint}
    assert {f"keys/{ELASTIC}.asc", f"keys/{signer.fingerprint}.asc"} <= set(sums)
    agent = "downloads/beats/elastic-agent/elastic-agent-9.0.0-linux-arm64.tar.gz"
    assert items[agent]["kind"] == "artifact"
    assert items[agent]["verification"]["signer"] == signer.fingerprint
    assert items[agent]["verification"]["signature"] == agent + ".asc"
    assert items[agent]["source"] == artifact_server.url + agent.removeprefix("downloads/")
    assert items["packages/nginx/nginx-2.0.0.zip"]["kind"] == "package"
    assert {i["kind"] for i in items.values()} >= {
        "image-index", "image-manifest", "image-config", "image-layer", "oci-layout",
        "artifact", "artifact-checksum", "artifact-signature", "package",
        "package-signature", "key"}
    assert result.signed is False and result.removed == ()


def test_a_second_fetch_into_a_locked_bundle_refuses(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    bundle = tmp_path / "bundle"
    with BundleLock(bundle), pytest.raises(BundleError, match=f"another airgap \\(pid "
                                                              f"{os.getpid()}\\) is writing"):
        run_fetch(manifest, bundle)


def test_rerun_reuses_everything_and_a_changed_manifest_fetches_only_the_new(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    bundle = tmp_path / "bundle"
    run_fetch(manifest, bundle)
    # Each run asks every source first (HEAD, manifests); only GETs of files download.
    downloads = len(artifact_server.faults.requests(method="GET"))
    blobs = len(registry_front.faults.requests("*/blobs/*", method="GET"))
    packages = len(epr_server.faults.requests("/epr/*", method="GET"))
    again = run_fetch(manifest, bundle)
    assert len(artifact_server.faults.requests(method="GET")) == downloads
    assert len(registry_front.faults.requests("*/blobs/*", method="GET")) == blobs
    assert len(epr_server.faults.requests("/epr/*", method="GET")) == packages
    assert all(a.file.reused for a in again.artifacts)

    changed = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                            platforms={"arch": ["x86_64"]},
                            integrations=["system", "nginx", "fleet_server", "endpoint"],
                            name="changed.yaml")
    result = run_fetch(changed, bundle)
    new_requests = [r.path for r in artifact_server.faults.requests(method="GET")[downloads:]]
    assert all("endpoint-security" in p for p in new_requests) and len(new_requests) == 3
    assert [r.path for r in epr_server.faults.requests("/epr/*", method="GET")[packages:]] == [
        "/epr/endpoint/endpoint-9.0.0.zip.sig", "/epr/endpoint/endpoint-9.0.0.zip"]
    assert "downloads/beats/elastic-agent/elastic-agent-9.0.0-linux-arm64.tar.gz" in \
        result.removed
    assert not any("arm64" in f for f in files_of(bundle) if f.startswith("downloads/"))
    check = subprocess.run(["sha512sum", "--check", "--quiet", "SHA512SUMS"], cwd=bundle)
    assert check.returncode == 0


def test_a_failed_fetch_leaves_no_index_and_lists_every_failure(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             integrations=["legacy_only"])
    bundle = tmp_path / "bundle"
    with pytest.raises(NotFoundError, match="integration legacy_only"):
        run_fetch(manifest, bundle)
    assert not (bundle / "SHA512SUMS").exists() and not (bundle / "bundle.json").exists()
    # It failed before it wrote anything: the folder it made (and its lock) are gone, and
    # a rerun of a fixed manifest makes them again.
    assert not bundle.exists()
    fixed = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                          name="fixed.yaml")
    run_fetch(fixed, bundle)
    assert not (bundle / ".airgap.lock").exists() and (bundle / "SHA512SUMS").is_file()


def test_fetch_refuses_a_folder_that_is_not_empty_and_not_a_bundle(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    home = tmp_path / "home"
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(UsageError, match="is not empty and is not an airgap bundle"):
        run_fetch(manifest, home)
    assert files_of(home) == {"downloads/holiday.jpg"}
    assert artifact_server.faults.log == []


def test_rerun_after_an_interrupted_run_removes_what_it_left_behind(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    bundle = tmp_path / "bundle"
    run_fetch(manifest, bundle)
    # What a run of another manifest, killed before it wrote its index, leaves behind.
    (bundle / "bundle.json").unlink()
    (bundle / "SHA512SUMS").unlink()
    (bundle / ".airgap.lock").write_text("12345\n")
    leftovers = ["packages/apache/apache-1.0.0.zip", "packages/apache/apache-1.0.0.zip.sig",
                 "downloads/beats/filebeat/filebeat-9.0.0-linux-x86_64.tar.gz.part",
                 "images/blobs/sha256/" + "ab" * 32 + ".part", "bundle.json.part"]
    for path in leftovers:
        (bundle / path).parent.mkdir(parents=True, exist_ok=True)
        (bundle / path).write_bytes(b"left over")
    result = run_fetch(manifest, bundle)
    assert sorted(result.removed) == sorted(leftovers)
    assert not (bundle / "packages" / "apache").exists()
    check = subprocess.run(["sha512sum", "--check", "--strict", "SHA512SUMS"], cwd=bundle,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    sums, _ = parse_sums((bundle / "SHA512SUMS").read_text())
    assert set(sums) == files_of(bundle) - {"SHA512SUMS"}


def test_operator_signature_of_sha512sums(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    operator = SigningKey("site operator", "ops@example.test")
    try:
        manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
        bundle = tmp_path / "bundle"
        result = run_fetch(manifest, bundle, sign_with=operator.fingerprint,
                           gnupg_home=operator.home)
        assert result.signed
        check = subprocess.run(["gpgv", "--keyring", str(operator.home / "pubring.kbx"),
                                str(bundle / "SHA512SUMS.asc"), str(bundle / "SHA512SUMS")],
                               capture_output=True)
        assert check.returncode == 0, check.stderr
    finally:
        operator.close()


@pytest.mark.parametrize("problem", ["no --gnupg-home", "a key the home lacks"])
def test_a_signing_key_that_cannot_sign_is_refused_before_any_download(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path,
        problem: str) -> None:
    operator = SigningKey("site operator", "ops@example.test")
    try:
        manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
        bundle = tmp_path / "bundle"
        home = None if problem == "no --gnupg-home" else operator.home
        with pytest.raises(UsageError) as refused:
            run_fetch(manifest, bundle, sign_with="nobody@example.test", gnupg_home=home)
        assert refused.value.exit_code == ExitCode.USAGE
        assert artifact_server.faults.log == [], "downloads started before the key was checked"
        assert not (bundle / "SHA512SUMS").exists()
    finally:
        operator.close()


def start_fetch(manifest: Path, bundle: Path, temporary: Path, *options: str,
                **popen: Any) -> subprocess.Popen[str]:
    """``airgap fetch --quiet`` in a process of its own, with ``temporary`` (made here)
    as its TMPDIR: where its GnuPG home goes, and what a test can check is left empty."""
    temporary.mkdir()
    return start_airgap("fetch", str(manifest), "-o", str(bundle), "--quiet", *options,
                        env={"TMPDIR": str(temporary)}, **popen)


def test_killed_fetch_resumes_without_downloading_verified_files_again(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=400_000, integrations=["system", "fleet_server", "endpoint"])
    # Slow enough to be killed in the middle: 64 KiB per 50 ms per file.
    artifact_server.faults.inject("*.tar.gz", Fault("slow", times=-1, delay=0.05))
    bundle = tmp_path / "bundle"
    # A killed process cleans nothing up: its GnuPG home goes to our tmp_path, not /tmp.
    process = start_fetch(manifest, bundle, tmp_path / "tmp", "--jobs", "2")
    deadline = time.monotonic() + 60
    done: set[str] = set()
    staged = bundle / ".airgap-next"  # where a fetch writes until it commits
    while time.monotonic() < deadline and len(done) < 3:
        done = {p.relative_to(staged).as_posix() for p in staged.glob("downloads/**/*.tar.gz")}
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(done) >= 3, "the fetch finished no artifact before the kill"
    finished = {p.relative_to(staged).as_posix() for p in staged.glob("downloads/**/*.tar.gz")}
    assert not (bundle / "SHA512SUMS").exists()
    artifact_server.faults.clear()

    run_fetch(manifest, bundle)
    fetched_again = {r.path for r in artifact_server.faults.requests(method="GET")}
    for path in finished:
        assert "/downloads/" + path.removeprefix("downloads/") not in fetched_again
    assert not any(f.endswith(".part") for f in files_of(bundle))
    sums = (bundle / "SHA512SUMS").read_text()
    assert ".part" not in sums
    assert subprocess.run(["sha512sum", "--check", "--quiet", "SHA512SUMS"],
                          cwd=bundle).returncode == 0


def test_ctrl_c_stops_every_part_of_the_fetch_at_once(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=3_000_000)
    artifact_server.faults.inject("*.tar.gz", Fault("slow", times=-1, delay=0.2))
    bundle = tmp_path / "bundle"
    temporary = tmp_path / "tmp"
    process = start_fetch(manifest, bundle, temporary, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    staged = bundle / ".airgap-next"
    while time.monotonic() < deadline and not any(staged.glob("downloads/**/*.tar.gz.part")):
        time.sleep(0.05)
    assert any(staged.glob("downloads/**/*.tar.gz.part")), "no transfer started"
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    # Every transfer stops at its next chunk, not when the slow files are complete.
    assert time.monotonic() - interrupted < 5, stderr
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"what was fetched waits in {bundle}/.airgap-next/: run the same command again" \
        in " ".join(stderr.split())
    assert list(temporary.iterdir()) == []  # the GnuPG home went too
    assert not (bundle / "SHA512SUMS").exists()
    artifact_server.faults.clear()
    run_fetch(manifest, bundle)
    assert (bundle / "SHA512SUMS").exists()


def test_ctrl_c_before_anything_was_fetched_says_the_folder_was_not_made(
        make_manifest: ManifestMaker, artifact_server: ArtifactServer,
        epr_server: EprServer, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the check waits on it
        manifest = make_manifest(artifacts_from=artifact_server, epr_from=epr_server,
                                 integrations=["nginx"], sources={
                                     "registry": f"http://127.0.0.1:{silent.getsockname()[1]}"})
        bundle = tmp_path / "new" / "bundle"
        process = start_fetch(manifest, bundle, tmp_path / "tmp", stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not (bundle / ".airgap.lock").exists():
            assert time.monotonic() < deadline and process.poll() is None, "never started"
            time.sleep(0.05)
        time.sleep(0.5)  # in the check of the sources, waiting for the registry
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert f"nothing was kept ({bundle} was not made): run the same command again" in \
        " ".join(stderr.split()), stderr
    assert "waits in" not in stderr and "Traceback" not in stderr
    assert not (tmp_path / "new").exists()


def test_ctrl_c_during_a_stalled_transfer_does_not_wait_for_the_read_timeout(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    # A read from a server that went quiet lasts until the 60 s read timeout, and nothing
    # interrupts it: the command must end without it (what it was writing is a .part).
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=3_000_000)
    artifact_server.faults.inject("*.tar.gz", Fault("stall", times=-1, after=100_000,
                                                    delay=600))
    bundle = tmp_path / "bundle"
    temporary = tmp_path / "tmp"
    process = start_fetch(manifest, bundle, temporary, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            p.stat().st_size for p in bundle.glob("downloads/**/*.tar.gz.part")):
        time.sleep(0.05)
    time.sleep(0.3)  # the transfers now wait for bytes that never come
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert time.monotonic() - interrupted < 8, stderr
    assert process.returncode == 130, stderr
    assert list(temporary.iterdir()) == []  # the GnuPG home went too
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert not list(bundle.glob("downloads/**/*.tar.gz")), "a stalled file looks complete"
    artifact_server.faults.clear()
    run_fetch(manifest, bundle)  # the lock is free, and the .part files resume
    assert (bundle / "SHA512SUMS").exists()


# -- more images, Elastic Defend and airgap's wheelhouse in one bundle -----------------------


def test_a_bundle_with_everything_is_complete_and_describes_it(
        rich_bundle: Path, pushed_image: TestImage, agent_image: TestImage,
        operator: SigningKey, tmp_path: Path) -> None:
    from tests.conftest import DEFEND_ARTIFACTS

    check = subprocess.run(["sha512sum", "--check", "--strict", "SHA512SUMS"], cwd=rich_bundle,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    sums, _ = parse_sums((rich_bundle / "SHA512SUMS").read_text())
    assert set(sums) == files_of(rich_bundle) - {"SHA512SUMS", "SHA512SUMS.asc"}
    description = json.loads((rich_bundle / "bundle.json").read_text())
    assert description["format"] == 2
    kinds = {i["path"]: i["kind"] for i in description["items"]}

    # Two images in one layout, the layer they share stored once.
    [agent] = description["images"]
    assert agent["reference"] == "docker.elastic.co/elastic-agent/elastic-agent:9.0.0"
    assert agent["upstream_digest"] == agent_image.index_digest
    index = json.loads((rich_bundle / "images/index.json").read_text())
    names = [e["annotations"]["io.containerd.image.name"] for e in index["manifests"]]
    assert names == [f"docker.elastic.co/{TEST_REPOSITORY}:9.0.0", agent["reference"]]
    assert [e["annotations"]["org.opencontainers.image.ref.name"]
            for e in index["manifests"]] == ["9.0.0", agent["reference"]]
    shared = pushed_image.shared_layers[0]
    for image in (description["image"], agent):
        assert all(shared in p["layers"] for p in image["platforms"].values())
    blobs = [p for p in sums if p.startswith("images/blobs/")]
    assert len(blobs) == len(set(blobs))
    assert f"images/blobs/sha256/{shared[7:]}" in blobs
    wanted = {d for image in (description["image"], agent) for p in image["platforms"].values()
              for d in (p["manifest"], p["config"], *p["layers"])}
    wanted |= {description["image"]["digest"], agent["digest"]}
    assert {f"sha256:{b.rsplit('/', 1)[1]}" for b in blobs} == wanted

    # Elastic Defend: the manifest, its artifacts, when it was fetched.
    [defend] = description["defend"]
    assert defend["endpoint_version"] == "9.0.0" and defend["manifest_version"] == "1.0.137"
    assert defend["artifacts"] == len(DEFEND_ARTIFACTS)
    assert defend["path"] == "security/downloads/endpoint/manifest/artifacts-9.0.0.zip"
    assert kinds[defend["path"]] == "defend-manifest"
    assert sum(1 for k in kinds.values() if k == "defend-artifact") == len(DEFEND_ARTIFACTS)

    # airgap's wheelhouse, listed like every other file.
    tools = sorted(p for p, k in kinds.items() if k == "tool")
    assert tools == ["tools/airgap-0.1.0-wheelhouse/PyYAML-6.0.2-cp311-cp311-manylinux_2_17_"
                     "x86_64.whl", "tools/airgap-0.1.0-wheelhouse/airgap-0.1.0-py3-none-any.whl",
                     "tools/airgap-0.1.0-wheelhouse/install.sh",
                     "tools/airgap-0.1.0-wheelhouse/requirements.txt"]
    assert (rich_bundle / tools[-2]).stat().st_mode & 0o111

    # skopeo finds each image in the layout by its name.
    for name in ("9.0.0", agent["reference"]):
        inspected = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{rich_bundle}/images:"
                                    f"{name}"], capture_output=True, text=True)
        assert inspected.returncode == 0, inspected.stderr


def test_with_tool_refuses_a_folder_that_is_no_wheelhouse_before_downloading(
        make_manifest: ManifestMaker, tmp_path: Path) -> None:
    from airgap.cli import main

    manifest = make_manifest()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("hello")
    bundle = tmp_path / "bundle"
    with pytest.raises(UsageError, match="is not an airgap wheelhouse"):
        run_fetch(manifest, bundle, with_tool=notes)
    assert not bundle.exists()
    (notes / "link").symlink_to("/etc/passwd")
    assert main(["fetch", str(manifest), "-o", str(bundle), "--with-tool", str(notes)]) == 2


def test_a_new_fetch_brings_the_new_defend_manifest_and_drops_what_it_no_longer_lists(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, defend_server: DefendServer,
        tmp_path: Path) -> None:
    manifest = make_manifest(artifacts_from=artifact_server, epr_from=epr_server,
                             integrations=["endpoint"],
                             artifacts={"products": ["elastic-agent"]},
                             sources={"registry": registry_front.url,
                                      "security": defend_server.url})
    for item in make_plan(load_manifest(manifest)).artifacts:
        artifact_server.publish(item.path, 10_000)
    defend_server.publish("9.0.0", "1.0.1", {"old-rules-v1": b"old\n" * 100})
    bundle = tmp_path / "bundle"
    first = run_fetch(manifest, bundle)
    [result] = first.extras.defend
    # Fetched into staging, then moved into the bundle by the commit.
    old = bundle / Staging(bundle).relative(next(iter(result.artifacts))[1].dest)
    assert old.is_file()
    defend_server.publish("9.0.0", "1.0.2", {"new-rules-v1": b"new\n" * 100})
    second = run_fetch(manifest, bundle)
    assert [d.document.manifest_version for d in second.extras.defend] == ["1.0.2"]
    assert not old.exists()
    assert any(path.startswith("security/downloads/endpoint/artifacts/old-rules-v1/")
               for path in second.removed)
    description = json.loads((bundle / "bundle.json").read_text())
    assert description["defend"][0]["manifest_version"] == "1.0.2"
    assert description["defend"][0]["fetched"] >= first.extras.defend[0].fetched


def test_fetch_onto_a_fresh_ext4_medium_keeps_its_empty_lost_and_found(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    medium = tmp_path / "medium"
    (medium / "lost+found").mkdir(parents=True, mode=0o700)
    done = in_pipe("fetch", str(manifest), "-o", str(medium))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (medium / "SHA512SUMS").is_file()
    assert (medium / "lost+found").is_dir() and not any((medium / "lost+found").iterdir())
    checked = in_pipe("verify", str(medium), "--json")
    assert not any(p["path"].startswith("lost+found") for p in
                   json.loads(checked.stdout)["problems"])
    assert any("lost+found: the empty folder a fresh ext4 medium holds" in w
               for w in json.loads(checked.stdout)["warnings"])
    # fsck's files in it: the medium was damaged, and holds something else than a bundle
    other = tmp_path / "other"
    (other / "lost+found").mkdir(parents=True, mode=0o700)
    (other / "lost+found" / "#12").write_bytes(b"recovered")
    refused = in_pipe("fetch", str(manifest), "-o", str(other))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is not empty and is not an airgap bundle" in refused.stderr
    assert (other / "lost+found" / "#12").read_bytes() == b"recovered"
