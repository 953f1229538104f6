"""Artifacts: the planned files, in Elastic's tree, each verified or not kept at all."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from airgap.bundle.staging import Staging
from airgap.errors import ChecksumMismatchError, ManyErrors, NotFoundError, SignatureError
from airgap.fetch.artifacts import fetch_artifacts
from airgap.manifest import load_manifest
from airgap.manifest.plan import ArtifactItem, make_plan
from airgap.net.download import Downloader
from airgap.trust.gpg import Verifier
from tests.conftest import ManifestMaker
from tests.peers.artifacts import ArtifactServer, write_sha512
from tests.peers.files import Fault
from tests.peers.gpgkeys import SigningKey

AGENT = "beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"


def planned(make_manifest: ManifestMaker, server: ArtifactServer, **keys: object
            ) -> list[ArtifactItem]:
    plan = make_plan(load_manifest(make_manifest(artifacts_from=server, **keys)))
    server.publish_paths([item.path for item in plan.artifacts], size=20_000)
    return list(plan.artifacts)


def bundle_files(bundle: Path) -> set[str]:
    """The files the phase left for the commit (the phase writes into staging only)."""
    staged = Staging(bundle).folder
    return {str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()}


def test_multi_platform_fetch_gets_exactly_the_planned_tree(
        make_manifest: ManifestMaker, artifact_server: ArtifactServer, downloader: Downloader,
        verifier: Verifier, signer: SigningKey, tmp_path: Path) -> None:
    items = planned(make_manifest, artifact_server,
                    platforms={"os": ["linux", "windows", "darwin"], "arch": ["x86_64", "arm64"],
                               "formats": ["archive", "deb", "rpm"]},
                    integrations=["system", "fleet_server", "endpoint"])
    bundle = tmp_path / "bundle"
    results = fetch_artifacts(items, Staging(bundle), downloader, verifier)
    expected = {f"downloads/{i.path}{suffix}" for i in items for suffix in ("", ".sha512", ".asc")}
    assert bundle_files(bundle) == expected
    assert "downloads/beats/elastic-agent/elastic-agent-9.0.0-darwin-aarch64.tar.gz" in expected
    assert "downloads/endpoint-dev/endpoint-security-9.0.0-windows-x86_64.zip" in expected
    assert "downloads/beats/metricbeat/metricbeat-9.0.0-aarch64.rpm" in expected
    for result in results:
        source = artifact_server.root / result.item.path
        assert result.file.dest.read_bytes() == source.read_bytes()
        assert result.file.digests.sha512 == hashlib.sha512(source.read_bytes()).hexdigest()
        assert result.signer.fingerprint == signer.fingerprint
    # The same files again: nothing is downloaded twice.
    before = len(artifact_server.faults.log)
    again = fetch_artifacts(items, Staging(bundle), downloader, verifier)
    assert all(r.file.reused for r in again)
    assert len(artifact_server.faults.log) == before


def tamper_wrong_sha512(path: Path, attacker: SigningKey) -> None:
    write_sha512(path, "0" * 128)


def tamper_sha512_names_other_file(path: Path, attacker: SigningKey) -> None:
    write_sha512(path, name="filebeat-9.0.0-linux-x86_64.tar.gz")


def tamper_untrusted_signature(path: Path, attacker: SigningKey) -> None:
    attacker.sign(path)


def tamper_corrupt_asc(path: Path, attacker: SigningKey) -> None:
    asc = path.with_name(path.name + ".asc")
    lines = asc.read_text().splitlines()
    lines[2] = "A" * len(lines[2])
    asc.write_text("\n".join(lines) + "\n")


def tamper_missing_asc(path: Path, attacker: SigningKey) -> None:
    path.with_name(path.name + ".asc").unlink()


def tamper_file_and_checksum(path: Path, attacker: SigningKey) -> None:
    # A consistent .sha512 for altered bytes: only the signature can catch this.
    content = path.read_bytes()
    path.write_bytes(content[:-1] + bytes([content[-1] ^ 0xFF]))
    write_sha512(path)


@pytest.mark.parametrize(("tamper", "error", "message"), [
    (tamper_wrong_sha512, ChecksumMismatchError,
     "elastic-agent-9.0.0-linux-x86_64.tar.gz: SHA-512 is .* but "
     "elastic-agent-9.0.0-linux-x86_64.tar.gz.sha512 says"),
    (tamper_sha512_names_other_file, ChecksumMismatchError,
     "elastic-agent-9.0.0-linux-x86_64.tar.gz.sha512: names "
     "'filebeat-9.0.0-linux-x86_64.tar.gz', not 'elastic-agent-9.0.0-linux-x86_64.tar.gz'"),
    (tamper_untrusted_signature, SignatureError,
     "elastic-agent-9.0.0-linux-x86_64.tar.gz: signed by key ID .* not a trusted key"),
    (tamper_corrupt_asc, SignatureError,
     "elastic-agent-9.0.0-linux-x86_64.tar.gz: elastic-agent-9.0.0-linux-x86_64.tar.gz.asc "
     "is not a valid OpenPGP signature"),
    (tamper_missing_asc, NotFoundError,
     "elastic-agent-9.0.0-linux-x86_64.tar.gz.asc: not found"),
    (tamper_file_and_checksum, SignatureError,
     "elastic-agent-9.0.0-linux-x86_64.tar.gz: does not match its signature"),
])
def test_each_kind_of_tampering_is_refused_naming_the_file(
        make_manifest: ManifestMaker, artifact_server: ArtifactServer, downloader: Downloader,
        verifier: Verifier, attacker: SigningKey, tmp_path: Path, tamper: object,
        error: type[Exception], message: str) -> None:
    items = planned(make_manifest, artifact_server, integrations=["fleet_server"])
    tamper(artifact_server.root / AGENT, attacker)  # type: ignore[operator]
    bundle = tmp_path / "bundle"
    with pytest.raises(error, match=message):
        fetch_artifacts(items, Staging(bundle), downloader, verifier)
    # The untouched fleet-server artifact is complete; nothing of the agent remains.
    assert bundle_files(bundle) == {
        f"downloads/{items[1].path}{suffix}" for suffix in ("", ".sha512", ".asc")}


def test_every_failing_artifact_is_listed(make_manifest: ManifestMaker,
                                          artifact_server: ArtifactServer,
                                          downloader: Downloader, verifier: Verifier,
                                          attacker: SigningKey, tmp_path: Path) -> None:
    items = planned(make_manifest, artifact_server, integrations=["fleet_server"])
    attacker.sign(artifact_server.root / items[0].path)
    (artifact_server.root / (items[1].path + ".asc")).unlink()
    with pytest.raises(ManyErrors) as caught:
        fetch_artifacts(items, Staging(tmp_path / "bundle"), downloader, verifier)
    assert caught.value.exit_code == 3
    text = str(caught.value)
    assert items[0].filename in text and f"{items[1].filename}.asc: not found" in text
    assert bundle_files(tmp_path / "bundle") == set()


def test_faults_are_survived(make_manifest: ManifestMaker, artifact_server: ArtifactServer,
                             downloader: Downloader, verifier: Verifier, tmp_path: Path) -> None:
    items = planned(make_manifest, artifact_server, platforms={"arch": ["x86_64", "arm64"]})
    faults = artifact_server.faults
    faults.inject("*linux-x86_64.tar.gz", Fault("drop", after=5000))
    faults.inject("*linux-arm64.tar.gz", Fault("truncate", after=7000))
    faults.inject("*.sha512", Fault("status", times=3, status=502))
    faults.inject("*.asc", Fault("status", times=1, status=503, retry_after="0"))
    results = fetch_artifacts(items, Staging(tmp_path / "bundle"), downloader, verifier)
    assert len(results) == 2
    resumed = [r for r in faults.log if r.range]
    assert {r.path.rsplit("-", 1)[-1] for r in resumed} == {"x86_64.tar.gz", "arm64.tar.gz"}


def test_redirects_are_followed(make_manifest: ManifestMaker, artifact_server: ArtifactServer,
                                downloader: Downloader, verifier: Verifier,
                                tmp_path: Path) -> None:
    items = planned(make_manifest, artifact_server)
    artifact_server.redirect = True
    (result,) = fetch_artifacts(items, Staging(tmp_path / "bundle"), downloader, verifier)
    assert result.file.dest.read_bytes() == (artifact_server.root / items[0].path).read_bytes()
