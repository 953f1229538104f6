"""Integration packages: the versions /search offers as Kibana asks, signed, or refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airgap.bundle.staging import Staging
from airgap.errors import NotFoundError, ServerResponseError, SignatureError
from airgap.fetch.packages import PackageResult, fetch_packages, newest_version, resolve
from airgap.manifest import load_manifest
from airgap.manifest.plan import make_plan
from airgap.net.download import Downloader
from airgap.trust.gpg import Verifier
from tests.conftest import ManifestMaker
from tests.peers.epr import EprServer
from tests.peers.files import Fault
from tests.peers.gpgkeys import SigningKey


def run(make_manifest: ManifestMaker, epr: EprServer, downloader: Downloader,
        verifier: Verifier, bundle: Path, integrations: list[str], version: str = "9.0.0",
        **keys: Any) -> list[PackageResult]:
    manifest = load_manifest(make_manifest(epr_from=epr, integrations=integrations, version=version,
                                           artifacts={"products": []}, **keys))
    plan = make_plan(manifest)
    resolved = [(package, item.reason) for item in plan.packages
                for package in resolve(item, manifest.stack_version, manifest.sources.epr,
                                       downloader)]
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
                       match=r"package legacy_only \(integration legacy_only\): no version is "
                             r"compatible with Kibana 9\.0\.0"):
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
    def offered(version: str, name: str = "a") -> dict[str, str]:
        return {"name": name, "version": version, "download": f"/epr/{name}/{name}-{version}.zip"}

    assert newest_version("a", [offered("1.10.0"), offered("1.9.0"), offered("9.0.0", "b")],
                          "s") == "1.10.0"
    with pytest.raises(ServerResponseError, match="expected a JSON list"):
        newest_version("a", {"name": "a"}, "s")
    with pytest.raises(ServerResponseError, match="is not a package version"):
        newest_version("a", [{"name": "a", "version": "../../etc"}], "s")
    with pytest.raises(ServerResponseError, match="is not a package version"):
        newest_version("a", [{"name": "a", "version": "2.0.0\n"}], "s")


def test_kibanas_spec_range_and_zero_versions_select_as_kibana_would(
        make_manifest: ManifestMaker, epr_server: EprServer, downloader: Downloader,
        verifier: Verifier, tmp_path: Path) -> None:
    # 9.0 reads package specs 2.3 to 3.3: a 3.4 package is for newer Kibanas only.
    epr_server.add("kafka", "0.9.0")
    epr_server.add("kafka", "1.1.0", format_version="3.4.0")
    (result,) = run(make_manifest, epr_server, downloader, verifier, tmp_path / "b", ["kafka"])
    assert result.package.version == "0.9.0"  # 0.x is no pre-release
    (search,) = epr_server.searches
    assert search == {"package": "kafka", "kibana.version": "9.0.0", "prerelease": "false",
                      "spec.min": "2.3", "spec.max": "3.3"}
    (newer,) = run(make_manifest, epr_server, downloader, verifier, tmp_path / "c", ["kafka"],
                   version="9.1.0")
    assert newer.package.version == "1.1.0"


def test_every_compatible_version_or_a_pinned_one(
        make_manifest: ManifestMaker, epr_server: EprServer, downloader: Downloader,
        verifier: Verifier, tmp_path: Path) -> None:
    epr_server.add("elastic_agent", "1.0.0")
    bundle = tmp_path / "bundle"
    results = run(make_manifest, epr_server, downloader, verifier, bundle, ["system"],
                  registry={"flavor": "tailored", "all_versions": True,
                            "packages": ["nginx@1.20.0"]})
    found = sorted((r.package.name, r.package.version, r.reason) for r in results)
    assert found == [
        ("elastic_agent", "1.0.0", "Fleet installs it at setup"),
        ("fleet_server", "1.6.0", "Fleet installs it at setup"),
        ("nginx", "1.20.0", "registry.packages (nginx@1.20.0)"),
        ("system", "1.60.0", "integration system; Fleet installs it at setup"),
        ("system", "2.1.0", "integration system; Fleet installs it at setup")]
    assert (staged(bundle) / "packages/system/system-1.60.0.zip.sig").is_file()


def test_the_answers_paths_are_used_not_composed(
        make_manifest: ManifestMaker, epr_server: EprServer, downloader: Downloader,
        verifier: Verifier, tmp_path: Path) -> None:
    moved = epr_server.root / "epr" / "mirror" / "files"
    moved.mkdir(parents=True)
    original = epr_server.root / "epr" / "nginx"
    for name in ("nginx-2.0.0.zip", "nginx-2.0.0.zip.sig"):
        (original / name).rename(moved / name)
    epr_server.paths["nginx", "2.0.0"] = "/epr/mirror/files/nginx-2.0.0.zip"
    (result,) = run(make_manifest, epr_server, downloader, verifier, tmp_path / "b", ["nginx"])
    assert result.file.url.endswith("/epr/mirror/files/nginx-2.0.0.zip")
    assert result.signature.url.endswith("/epr/mirror/files/nginx-2.0.0.zip.sig")


def test_a_version_the_registry_has_no_signature_for_is_refused(
        make_manifest: ManifestMaker, epr_server: EprServer, downloader: Downloader,
        verifier: Verifier, tmp_path: Path) -> None:
    epr_server.add("unsigned", "1.0.0", signed=False)
    bundle = tmp_path / "bundle"
    with pytest.raises(SignatureError, match="publishes no signature for it"):
        run(make_manifest, epr_server, downloader, verifier, bundle, ["unsigned"])
    assert not any(p.is_file() for p in bundle.rglob("*"))
