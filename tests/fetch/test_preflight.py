"""Answers in the first seconds: every source is asked before anything large is fetched."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import IN_CI, REPO, ManifestMaker, site_manifest, tailored_manifest
from tests.peers.artifacts import ArtifactServer
from tests.peers.defend import DefendServer
from tests.peers.epr import EprServer
from tests.peers.files import Fault
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage
from tests.peers.net import BackgroundServer, wait_until
from tests.peers.processes import DockerRegistry
from tests.peers.registry_front import RegistryFront
from tests.peers.tls import make_certificate
from tests.terminal import at_terminal, in_pipe


def blobs_fetched(front: RegistryFront) -> int:
    return len([r for r in front.faults.requests("/v2/*/blobs/*") if r.method == "GET"])


def test_a_typo_in_an_integration_is_a_manifest_error_in_seconds(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             integrations=["system", "ngnix"])
    started = time.monotonic()
    result = in_pipe("fetch", str(manifest), "-o", str(tmp_path / "sites" / "bundle"))
    assert time.monotonic() - started < 20
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "sites").exists(), "the failed fetch left the folders it made"
    empty = tmp_path / "empty"
    empty.mkdir()
    again = in_pipe("fetch", str(manifest), "-o", str(empty))
    assert again.returncode == 2 and list(empty.iterdir()) == [], "it left its lock"
    assert f"{manifest}:" in result.stderr and "integrations[1]: 'ngnix' is not a package" \
        in result.stderr
    assert "did you mean 'nginx'?" in result.stderr
    assert blobs_fetched(registry_front) == 0, "the image was downloaded before the check"
    assert artifact_server.faults.requests("*.tar.gz", method="GET") == []


def test_a_package_with_no_compatible_version_is_not_called_a_typo(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             integrations=["legacy_only"])
    result = in_pipe("fetch", str(manifest), "-o", str(tmp_path / "bundle"))
    assert result.returncode == 1
    assert "no version is compatible with Kibana 9.0.0" in result.stderr
    assert "did you mean" not in result.stderr


def test_a_missing_binary_is_named_before_any_download(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server)
    missing = "beats/filebeat/filebeat-9.0.0-linux-arm64.tar.gz"
    (artifact_server.root / missing).unlink()
    result = in_pipe("fetch", str(manifest), "-o", str(tmp_path / "bundle"))
    assert result.returncode == 1
    assert f"downloads/{missing}: not published at" in result.stderr
    assert blobs_fetched(registry_front) == 0
    assert artifact_server.faults.requests("*.tar.gz", method="GET") == []


def test_an_untrusted_certificate_fails_at_once(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async def search(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/search", search)
    with BackgroundServer(app, ssl_context=context) as epr:
        manifest = make_manifest(artifacts_from=artifact_server,
                                 sources={"registry": registry_front.url, "epr": epr.url + "/"},
                                 integrations=["nginx"])
        started = time.monotonic()
        result = in_pipe("fetch", str(manifest), "-o", str(tmp_path / "bundle"))
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    assert "the TLS certificate of 127.0.0.1 is not trusted" in result.stderr
    assert "--ca-cert" in result.stderr
    assert blobs_fetched(registry_front) == 0


def test_plan_check_shows_sizes_and_the_total_and_downloads_nothing(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=123_456)
    result = in_pipe("plan", str(manifest), "--check")
    assert result.returncode == 0, result.stderr
    agent = "downloads/beats/elastic-agent/elastic-agent-9.0.0-linux-x86_64.tar.gz"
    assert f"{agent} 120.6 KiB" in result.stdout
    assert "package nginx 2.0.0" in result.stdout
    assert "in all." in result.stdout.splitlines()[-1]
    document = json.loads(in_pipe("plan", str(manifest), "--check", "--json").stdout)
    check = document["result"]["check"]
    assert check["sizes"][agent] == 123_456
    assert check["bytes"] == sum(s for s in check["sizes"].values() if s is not None)
    assert blobs_fetched(registry_front) == 0
    assert artifact_server.faults.requests("*.tar.gz", method="GET") == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs of this test's own, unmounted after."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI=true but not root: mounting a tmpfs needs root")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_disk_too_small_is_refused_with_the_numbers_before_downloading(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, small_disk: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=4 << 20)  # 6 binaries of 4 MiB, and the image
    result = in_pipe("fetch", str(manifest), "-o", str(small_disk / "bundle"))
    assert result.returncode == 1, result.stderr
    assert f"{small_disk / 'bundle'}: not enough space on tmpfs mounted at {small_disk}" \
        in result.stderr
    assert "to download and" in result.stderr and "are free" in result.stderr
    assert artifact_server.faults.requests("*.tar.gz", method="GET") == []


def test_a_disk_that_fills_up_meanwhile_says_where_and_how_much_and_resumes(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, small_disk: Path,
        operator: SigningKey, operator_key: Path) -> None:
    # Room for the fetch when it starts; then another program fills the disk.
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             size=1 << 20, platforms={"arch": ["x86_64"]},
                             integrations=["system"])
    artifact_server.faults.inject("*.tar.gz", Fault("slow", times=-1, delay=0.1))
    bundle = small_disk / "bundle"
    process = subprocess.Popen([sys.executable, "-m", "airgap", "fetch", str(manifest), "-o",
                                str(bundle)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    staged = bundle / ".airgap-next"
    wait_until(lambda: staged.is_dir() and any(staged.rglob("*.tar.gz.part")), 60,
               "a download under way")
    filler = small_disk / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * (1 << 20))
            out.flush()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    assert "No space left on device" in stderr and f"tmpfs mounted at {small_disk}" in stderr
    assert "this fetch still has" in stderr and "run the same command again" in stderr
    assert "Traceback" not in stderr
    filler.unlink()
    artifact_server.faults.clear()
    again = in_pipe("fetch", str(manifest), "-o", str(bundle), "--sign-with",
                    operator.fingerprint, "--gnupg-home", str(operator.home))
    assert again.returncode == 0, again.stderr
    assert in_pipe("verify", str(bundle), "--trust-key", str(operator_key)).returncode == 0


# -- Elastic Defend's manifests ------------------------------------------------------------------

RULES = {"production-rules-linux-v1": b"linux rule\n" * 5000,
         "production-rules-macos-v1": b"macos rule\n" * 5000}


def defend_gets(server: DefendServer) -> list[str]:
    return [r.path for r in server.faults.requests("/downloads/*", method="GET")]


def test_a_defend_version_not_published_is_a_manifest_error_before_any_download(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, defend_server: DefendServer,
        tmp_path: Path) -> None:
    defend_server.publish("9.0.0", "1.0.7", RULES)
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             defend=defend_server,
                             security={"endpoint_artifacts": ["9.0.0", "8.19.99"]})
    line = next(n for n, text in enumerate(manifest.read_text().splitlines(), 1)
                if "8.19.99" in text)
    url = defend_server.url + "downloads/endpoint/manifest/artifacts-8.19.99.zip"
    expected = (f"{manifest}:{line}: security.endpoint_artifacts[1]: Elastic Defend's "
                f"artifacts for Endpoint 8.19.99 are not published at {url} (404)")
    for command in (("plan", str(manifest), "--check"),
                    ("fetch", str(manifest), "-o", str(tmp_path / "bundle"))):
        result = in_pipe(*command)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
    seen = at_terminal("plan", str(manifest), "--check")
    assert seen.code == 2, seen.text
    assert "security.endpoint_artifacts[1]: Elastic Defend's artifacts for Endpoint 8.19.99 " \
           "are not published" in " ".join(seen.text.split())
    seen.assert_no_traceback()
    assert blobs_fetched(registry_front) == 0, "the image was downloaded before the check"
    assert artifact_server.faults.requests("*.tar.gz", method="GET") == []
    assert not any("/artifacts/" in path for path in defend_gets(defend_server))
    assert not (tmp_path / "bundle" / "security").exists()


def test_the_stack_versions_defend_artifacts_missing_name_the_stack_version(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, defend_server: DefendServer,
        tmp_path: Path) -> None:
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             defend=defend_server, integrations=["system", "endpoint"],
                             security={"endpoint_artifacts": "auto"})
    result = in_pipe("plan", str(manifest), "--check")
    assert result.returncode == 2, result.stderr
    assert f"{manifest}:4: stack.version: Elastic Defend's artifacts for Endpoint 9.0.0 " \
           "are not published at" in result.stderr
    assert "set security.endpoint_artifacts to the Endpoint versions in use" in result.stderr


def test_plan_check_counts_the_defend_manifests_and_their_artifacts(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, defend_server: DefendServer,
        tmp_path: Path) -> None:
    document = defend_server.publish("9.0.0", "1.0.7", RULES)
    defend_server.publish("8.19.0", "1.0.7", RULES)  # the same artifacts: counted once
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             defend=defend_server,
                             security={"endpoint_artifacts": ["9.0.0", "8.19.0"]})
    answer = in_pipe("plan", str(manifest), "--check", "--json")
    assert answer.returncode == 0, answer.stderr
    sizes = json.loads(answer.stdout)["result"]["check"]["sizes"]
    for version in ("9.0.0", "8.19.0"):
        zip_path = f"downloads/endpoint/manifest/artifacts-{version}.zip"
        assert sizes[f"security/{zip_path}"] == (defend_server.root / zip_path).stat().st_size
    for entry in document["artifacts"].values():
        assert sizes["security" + entry["relative_url"]] == entry["encoded_size"]
    assert len([p for p in sizes if p.startswith("security/")]) == 4
    # Only the small manifests were read; no artifact was downloaded.
    assert all("/manifest/" in path for path in defend_gets(defend_server))


def test_a_defend_manifest_naming_a_path_outside_downloads_fails_before_any_download(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        artifact_server: ArtifactServer, epr_server: EprServer, defend_server: DefendServer,
        tmp_path: Path) -> None:
    document = defend_server.publish("9.0.0", "1.0.7", RULES)
    entry = document["artifacts"]["production-rules-linux-v1"]
    entry["relative_url"] = "/elsewhere" + entry["relative_url"]
    defend_server.write_manifest("9.0.0", document)
    manifest = site_manifest(make_manifest, registry_front, artifact_server, epr_server,
                             defend=defend_server, security={"endpoint_artifacts": ["9.0.0"]})
    result = in_pipe("fetch", str(manifest), "-o", str(tmp_path / "bundle"))
    assert result.returncode == 1, result.stderr
    url = defend_server.url + "downloads/endpoint/manifest/artifacts-9.0.0.zip"
    assert f"{url}: manifest.json: artifacts.production-rules-linux-v1.relative_url: " \
           "'/elsewhere/downloads/endpoint/" in result.stderr
    assert "is not below /downloads/" in result.stderr
    assert blobs_fetched(registry_front) == 0
    assert not (tmp_path / "bundle" / "security").exists()


def test_a_tailored_plan_is_checked_with_its_packages_and_the_layer_they_make(
        registry: DockerRegistry, epr_server: EprServer, signer_public_key: Path,
        server_images: dict[str, TestImage], small_disk: Path) -> None:
    epr_server.add("elastic_agent", "2.3.0")
    epr_server.add("kafka", "1.0.0", payload=10 << 20)
    manifest = tailored_manifest(small_disk.parent / "site.yaml", registry, epr_server,
                                 signer_public_key, "oci", arch=("x86_64",),
                                 packages=["kafka", "kafak"])
    # A typo among registry.packages is a manifest error naming that entry.
    typo = in_pipe("plan", str(manifest), "--check")
    assert typo.returncode == 2, typo.stderr
    assert "registry.packages[1]: 'kafak' is not a package" in typo.stderr
    assert "did you mean 'kafka'?" in typo.stderr
    # A version the registry does not offer for this Kibana is one too, with those it does.
    manifest = tailored_manifest(small_disk.parent / "site.yaml", registry, epr_server,
                                 signer_public_key, "oci", arch=("x86_64",),
                                 packages=["kafka@9.9.9"])
    pinned = in_pipe("plan", str(manifest), "--check")
    assert pinned.returncode == 2, pinned.stderr
    assert f"{manifest}:" in pinned.stderr
    assert "registry.packages[0]: package kafka@9.9.9: not a version compatible with " \
        "Kibana 9.0.0" in pinned.stderr
    assert "compatible versions: 1.0.0" in pinned.stderr
    manifest = tailored_manifest(small_disk.parent / "site.yaml", registry, epr_server,
                                 signer_public_key, "oci", arch=("x86_64",),
                                 packages=["kafka"])
    document = json.loads(in_pipe("plan", str(manifest), "--check", "--json").stdout)
    check = document["result"]["check"]
    assert set(check["packages"]) == {"nginx", "elastic_agent", "fleet_server", "system",
                                      "kafka"}
    zips = sum(size for path, size in check["sizes"].items() if path.startswith("packages/"))
    assert zips > 10 << 20
    # The layer holds every zip again (and its .sig): about as much as the zips.
    assert zips < check["composed_bytes"] < zips * 1.01 + (128 << 10)
    # 24 MiB hold what is downloaded (the base image, the zips), not the layer on top.
    assert check["bytes"] < 20 << 20 < check["bytes"] + check["composed_bytes"]
    result = in_pipe("fetch", str(manifest), "-o", str(small_disk / "bundle"))
    assert result.returncode == 1, result.stderr
    assert "not enough space on tmpfs" in result.stderr
    assert "to download and compose" in result.stderr
    assert epr_server.faults.requests("*.zip", method="GET") == []


def test_a_host_that_does_not_resolve_is_said_once_however_many_files_it_has(
        make_manifest: ManifestMaker, registry_front: RegistryFront,
        epr_server: EprServer) -> None:
    manifest = make_manifest(epr_from=epr_server, integrations=["nginx"], sources={
        "registry": registry_front.url, "artifacts": "http://files.no-such-host.invalid"})
    started = time.monotonic()
    result = in_pipe("plan", str(manifest), "--check")
    assert time.monotonic() - started < 20
    assert result.returncode == 1, result.stderr
    said = "cannot find files.no-such-host.invalid: the name does not resolve"
    assert result.stderr.count(said) == 1, result.stderr  # not once for each of 24 files
    assert "Traceback" not in result.stderr


def test_a_source_that_never_answers_fails_the_check_in_seconds(
        make_manifest: ManifestMaker, artifact_server: ArtifactServer,
        epr_server: EprServer, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never answers
        port = silent.getsockname()[1]
        manifest = make_manifest(artifacts_from=artifact_server, epr_from=epr_server,
                                 integrations=["nginx"],
                                 sources={"registry": f"http://127.0.0.1:{port}"})
        started = time.monotonic()
        result = in_pipe("fetch", str(manifest), "-o", str(tmp_path / "bundle"))
        took = time.monotonic() - started
    # Each request: 10 s, then one retry; a transfer's (60 s, six retries) would be minutes.
    assert took < 45, took
    assert result.returncode == 1, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "timed out" in result.stderr
    assert not (tmp_path / "bundle").exists()
