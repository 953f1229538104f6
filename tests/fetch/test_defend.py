"""Elastic Defend's artifacts from the artifacts.security.elastic.co stand-in: the manifest
and every artifact it lists, each held to its hashes and sizes."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from airgap.bundle.defend import BadDefendManifest
from airgap.bundle.staging import Staging
from airgap.errors import AirgapError, ChecksumMismatchError
from airgap.fetch.defend import DefendResult, fetch_defend
from airgap.manifest.plan import DefendItem
from airgap.net.download import Downloader
from tests.conftest import ManifestMaker, move_staged, site_manifest
from tests.peers.artifacts import ArtifactServer
from tests.peers.defend import DefendServer, manifest_path
from tests.peers.epr import EprServer
from tests.peers.files import Fault
from tests.peers.gpgkeys import SigningKey
from tests.peers.registry_front import RegistryFront
from tests.terminal import in_pipe

RULES = {"production-rules-linux-v1": b"linux rule\n" * 5000,
         "production-rules-macos-v1": b"macos rule\n" * 5000}


def item(server: DefendServer, version: str = "9.0.0") -> DefendItem:
    path = manifest_path(version)
    return DefendItem(version, path, server.url + path, server.url, "test")


def fetch(items: list[DefendItem], bundle: Path, downloader: Downloader
          ) -> list[DefendResult]:
    """The Defend phase of a fetch, and its commit once the fetch has worked."""
    results = fetch_defend(items, Staging(bundle), downloader)
    move_staged(bundle)
    return results


def test_the_manifest_and_every_artifact_land_under_the_servers_paths(
        defend_server: DefendServer, downloader: Downloader, tmp_path: Path) -> None:
    document = defend_server.publish("9.0.0", "1.0.7", RULES)
    # Until the fetch commits, what it fetched waits in staging, the bundle untouched.
    [waiting] = fetch_defend([item(defend_server)], Staging(tmp_path), downloader)
    assert waiting.manifest.dest == Staging(tmp_path).path(f"security/{manifest_path('9.0.0')}")
    assert waiting.manifest.dest.is_file() and not (tmp_path / "security").exists()
    [result] = fetch([item(defend_server)], tmp_path, downloader)
    assert result.document.manifest_version == "1.0.7"
    assert result.fetched.endswith("Z")
    for name, content in RULES.items():
        relative = document["artifacts"][name]["relative_url"]
        stored = tmp_path / "security" / relative.lstrip("/")
        assert zlib.decompress(stored.read_bytes()) == content
    assert {e.identifier for e, _ in result.artifacts} == set(RULES)
    assert not list(tmp_path.rglob("*.fresh*")) and not list(tmp_path.rglob("*.part"))


def test_a_corrupted_artifact_is_not_kept(defend_server: DefendServer, downloader: Downloader,
                                          tmp_path: Path) -> None:
    defend_server.publish("9.0.0", "1.0.7", RULES)
    defend_server.faults.inject("/downloads/endpoint/artifacts/production-rules-linux-v1/*",
                                Fault("corrupt", times=-1))
    with pytest.raises(ChecksumMismatchError, match="digest mismatch"):
        fetch([item(defend_server)], tmp_path, downloader)
    assert not list((tmp_path / "security").rglob("production-rules-linux-v1/*"))


def test_content_that_is_not_what_the_manifest_names_once_inflated_is_refused(
        defend_server: DefendServer, downloader: Downloader, tmp_path: Path) -> None:
    document = defend_server.publish("9.0.0", "1.0.7", RULES)
    entry = document["artifacts"]["production-rules-linux-v1"]
    entry["decoded_sha256"] = "0" * 64  # the served bytes match, their content does not
    defend_server.write_manifest("9.0.0", document)
    with pytest.raises(ChecksumMismatchError, match="decompressed, it is not the content"):
        fetch([item(defend_server)], tmp_path, downloader)


def test_a_zip_bomb_is_never_inflated_past_the_decoded_size(
        defend_server: DefendServer, downloader: Downloader, tmp_path: Path) -> None:
    document = defend_server.publish("9.0.0", "1.0.7", {"bomb-v1": b"\0" * (64 << 20)})
    entry = document["artifacts"]["bomb-v1"]
    entry["decoded_size"] = 1000  # claims small, inflates to 64 MiB
    defend_server.write_manifest("9.0.0", document)
    with pytest.raises(ChecksumMismatchError):
        fetch([item(defend_server)], tmp_path, downloader)


def test_what_is_not_a_manifest_is_refused(defend_server: DefendServer,
                                          downloader: Downloader, tmp_path: Path) -> None:
    target = defend_server.root / manifest_path("9.0.0")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"<html>maintenance</html>")
    with pytest.raises(BadDefendManifest, match="not a readable zip"):
        fetch([item(defend_server)], tmp_path, downloader)
    assert not (tmp_path / "security" / manifest_path("9.0.0")).exists()


def test_a_missing_version_says_which(defend_server: DefendServer, downloader: Downloader,
                                     tmp_path: Path) -> None:
    with pytest.raises(AirgapError, match="artifacts-8.99.0.zip"):
        fetch([item(defend_server, "8.99.0")], tmp_path, downloader)


def test_a_new_fetch_takes_the_new_manifest_and_what_two_versions_share_comes_once(
        defend_server: DefendServer, downloader: Downloader, tmp_path: Path) -> None:
    defend_server.publish("9.0.0", "1.0.7", RULES)
    fetch([item(defend_server)], tmp_path, downloader)
    defend_server.publish("9.0.0", "1.0.8", {**RULES, "new-v1": b"new\n" * 10})
    defend_server.publish("8.19.0", "1.0.8", RULES)
    defend_server.faults.clear()
    results = fetch([item(defend_server), item(defend_server, "8.19.0")], tmp_path,
                           downloader)
    assert [r.document.manifest_version for r in results] == ["1.0.8", "1.0.8"]
    gets = defend_server.faults.requests("/downloads/endpoint/artifacts/*", method="GET")
    # What the first fetch got is kept; what both versions list comes once: only the new.
    assert [g.path.split("/")[4] for g in gets] == ["new-v1"]
    assert len(defend_server.faults.requests("/downloads/endpoint/manifest/*")) == 2


def signing(operator: SigningKey) -> tuple[str, ...]:
    return ("--sign-with", operator.fingerprint, "--gnupg-home", str(operator.home))


def test_a_fetch_asks_for_each_manifest_once_and_keeps_what_its_check_read(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, defend_server: DefendServer,
        operator_key: Path, operator: SigningKey, tmp_path: Path) -> None:
    defend_server.publish("9.0.0", "1.0.7", RULES)
    defend_server.publish("8.19.0", "1.0.7", RULES)
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             defend=defend_server,
                             security={"endpoint_artifacts": ["9.0.0", "8.19.0"]})
    defend_server.faults.clear()
    bundle = tmp_path / "bundle"
    fetched = in_pipe("fetch", str(manifest), "-o", str(bundle), *signing(operator))
    assert fetched.returncode == 0, fetched.stderr
    for version in ("9.0.0", "8.19.0"):
        path = manifest_path(version)
        # the check of the sources reads it (to count its artifacts); the fetch keeps that
        assert len(defend_server.faults.requests(f"/{path}", method="GET")) == 1, version
        assert (bundle / "security" / path).read_bytes() == \
            (defend_server.root / path).read_bytes()
    checked = in_pipe("verify", str(bundle), "--trust-key", str(operator_key))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_manifest_without_its_signature_is_kept_with_a_warning_in_fetch_and_verify(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, defend_server: DefendServer,
        operator: SigningKey, operator_key: Path, tmp_path: Path) -> None:
    defend_server.publish("9.0.0", "1.0.7", RULES, signed=False)
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             defend=defend_server, security={"endpoint_artifacts": ["9.0.0"]})
    bundle = tmp_path / "bundle"
    fetched = in_pipe("fetch", str(manifest), "-o", str(bundle), *signing(operator))
    assert fetched.returncode == 0, fetched.stderr
    url = defend_server.url + manifest_path("9.0.0")
    assert f"{url}: the zip holds no manifest.sig: Elastic Endpoint checks the manifest's " \
           "signature and may refuse this manifest" in fetched.stderr
    checked = in_pipe("verify", str(bundle), "--trust-key", str(operator_key))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"security/{manifest_path('9.0.0')}: the zip holds no manifest.sig" \
        in checked.stderr
    # Signed, as Elastic's are: no warning.
    defend_server.publish("9.0.0", "1.0.8", RULES)
    again = in_pipe("fetch", str(manifest), "-o", str(bundle), *signing(operator))
    assert again.returncode == 0 and "manifest.sig" not in again.stderr, again.stderr
