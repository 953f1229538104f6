"""Integration packages: the newest compatible version from /search, signed, or refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from airgap.bundle.staging import Staging
from airgap.errors import NotFoundError, ServerResponseError, SignatureError
from airgap.fetch.packages import fetch_packages, newest_version, resolve
from airgap.manifest import load_manifest
from airgap.manifest.plan import make_plan
from airgap.net.download import Downloader
from airgap.trust.gpg import Verifier
from tests.conftest import ManifestMaker
from tests.peers.epr import EprServer
from tests.peers.files import Fault
from tests.peers.gpgkeys import SigningKey


def run(make_manifest: ManifestMaker, epr: EprServer, downloader: Downloader,
        verifier: Verifier, bundle: Path, integrations: list[str], version: str = "9.0.0"
        ) -> list:  # type: ignore[type-arg]
    manifest = load_manifest(make_manifest(epr_from=epr, integrations=integrations, version=version,
                                           artifacts={"products": []}))
    plan = make_plan(manifest)
    resolved = [(resolve(item, manifest.stack_version, manifest.sources.epr, downloader),
                 item.reason) for item in plan.packages]
    return fetch_packages(resolved, Staging(bundle), downloader, verifier)


def staged(bundle: Path) -> Path:
    """Where the phase writes: the staging folder, until a fetch commits."""
    return Staging(bundle).folder


def test_newest_compatible_ga_version_is_fetched_and_verified(
        make_manifest: ManifestMaker, epr_server: EprServer, downloader: Downloader,
        verifier: Verifier, signer: SigningKey, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    results = run(make_manifest, epr_server, downloader, verifier, bundle,
                  ["system", "nginx", "endpoint"])
    assert [(r.package.name, r.package.version) for r in results] == [
        ("system", "2.1.0"), ("nginx", "2.0.0"), ("endpoint", "9.0.0")]
    assert sorted(str(p.relative_to(staged(bundle))) for p in staged(bundle).rglob("*")
                  if p.is_file()) == [
        "packages/endpoint/endpoint-9.0.0.zip", "packages/endpoint/endpoint-9.0.0.zip.sig",
        "packages/nginx/nginx-2.0.0.zip", "packages/nginx/nginx-2.0.0.zip.sig",
        "packages/system/system-2.1.0.zip", "packages/system/system-2.1.0.zip.sig"]
    for result in results:
        assert result.signer.fingerprint == signer.fingerprint
        assert result.file.dest.read_bytes() == (
            epr_server.root / "epr" / result.package.name / result.file.dest.name).read_bytes()
    searches = epr_server.faults.requests("/search")
    assert len(searches) == 3


def test_kibana_version_selects_the_package_version(
        make_manifest: ManifestMaker, epr_server: EprServer, downloader: Downloader,
        verifier: Verifier, tmp_path: Path) -> None:
    (result,) = run(make_manifest, epr_server, downloader, verifier, tmp_path / "b", ["nginx"],
                    version="9.1.0")
    assert result.package.version == "3.0.0"


def test_no_compatible_version_names_integration_and_stack(
        make_manifest: ManifestMaker, epr_server: EprServer, downloader: Downloader,
        verifier: Verifier, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError,
                       match="integration legacy_only: no version is compatible with Kibana 9.0.0"):
        run(make_manifest, epr_server, downloader, verifier, tmp_path / "b", ["legacy_only"])


def test_tampered_zip_is_refused_and_nothing_stays(
        make_manifest: ManifestMaker, epr_server: EprServer, downloader: Downloader,
        verifier: Verifier, tmp_path: Path) -> None:
    zip_path = epr_server.root / "epr" / "nginx" / "nginx-2.0.0.zip"
    zip_path.write_bytes(zip_path.read_bytes() + b"trailing junk")
    bundle = tmp_path / "bundle"
    with pytest.raises(SignatureError, match="nginx-2.0.0.zip: does not match its signature"):
        run(make_manifest, epr_server, downloader, verifier, bundle, ["nginx"])
    assert [p for p in bundle.rglob("*") if p.is_file()] == []  # staging included


def test_package_signed_by_an_untrusted_key_is_refused(
        make_manifest: ManifestMaker, epr_server: EprServer, downloader: Downloader,
        verifier: Verifier, attacker: SigningKey, tmp_path: Path) -> None:
    zip_path = epr_server.root / "epr" / "system" / "system-2.1.0.zip"
    attacker.sign(zip_path, zip_path.with_name(zip_path.name + ".sig"))
    with pytest.raises(SignatureError, match="system-2.1.0.zip: signed by key ID"):
        run(make_manifest, epr_server, downloader, verifier, tmp_path / "b", ["system"])


def test_redirects_and_faults_are_survived(
        make_manifest: ManifestMaker, epr_server: EprServer, downloader: Downloader,
        verifier: Verifier, tmp_path: Path) -> None:
    epr_server.redirect = True
    epr_server.faults.inject("*.zip", Fault("drop", after=500))
    epr_server.faults.inject("*.sig", Fault("status", times=2, status=503))
    (result,) = run(make_manifest, epr_server, downloader, verifier, tmp_path / "b", ["system"])
    assert result.package.version == "2.1.0"


def test_search_answers_are_checked() -> None:
    assert newest_version("a", [{"name": "a", "version": "1.10.0"},
                                {"name": "a", "version": "1.9.0"},
                                {"name": "b", "version": "9.0.0"}], "s") == "1.10.0"
    with pytest.raises(ServerResponseError, match="expected a JSON list"):
        newest_version("a", {"name": "a"}, "s")
    with pytest.raises(ServerResponseError, match="is not a package version"):
        newest_version("a", [{"name": "a", "version": "../../etc"}], "s")
    with pytest.raises(ServerResponseError, match="is not a package version"):
        newest_version("a", [{"name": "a", "version": "2.0.0\n"}], "s")
