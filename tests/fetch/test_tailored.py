"""A tailored registry fetched: the server image plus exactly the verified packages.

The composed image is read back here with independent readers (Python's tarfile and
gzip, coreutils' sha512sum); tests/load/test_tailored.py hands it to the real Docker
engine, containerd and skopeo.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from airgap import package_registry
from airgap.errors import AirgapError
from airgap.fetch.run import FetchSettings, fetch
from airgap.fetch.tailored import estimated_size
from airgap.reporter import NullReporter
from tests.conftest import (
    SERVER_REPOSITORY,
    TAILORED_PACKAGES,
    publish_tailored_packages,
    tailored_manifest,
)
from tests.peers.epr import EprServer
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage, build_test_image, push_image
from tests.peers.processes import DockerRegistry
from tests.reporting import RecordingReporter
from tests.terminal import at_terminal, in_pipe

OCI_TYPES = ("application/vnd.oci.image.index.v1+json",
             "application/vnd.oci.image.manifest.v1+json",
             "application/vnd.oci.image.config.v1+json",
             "application/vnd.oci.image.layer.v1.tar+gzip")
DOCKER_TYPES = ("application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip")
TAILORED = "docker.elastic.co/package-registry/distribution:tailored-9.0.0"


def blob(bundle: Path, digest: str) -> bytes:
    return (bundle / "images/blobs/sha256" / digest.removeprefix("sha256:")).read_bytes()


def document(bundle: Path, digest: str) -> dict[str, Any]:
    return json.loads(blob(bundle, digest))


def package_files(bundle: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((bundle / "packages").rglob("*"))
            if p.is_file()}


def test_the_image_is_the_base_plus_one_layer_of_exactly_the_verified_packages(
        tailored_bundle: Path, server_images: dict[str, TestImage]) -> None:
    description = json.loads((tailored_bundle / "bundle.json").read_text())
    image = description["image"]
    family = "docker" if image["media_type"] == DOCKER_TYPES[0] else "oci"
    types = DOCKER_TYPES if family == "docker" else OCI_TYPES
    base = server_images[family]
    index_entry = json.loads((tailored_bundle / "images/index.json").read_text())["manifests"]
    assert [e["annotations"] for e in index_entry] == [{
        "org.opencontainers.image.ref.name": "tailored-9.0.0",
        "io.containerd.image.name": TAILORED}]
    assert image["reference"] == TAILORED and image["upstream_digest"] == base.index_digest
    tailored = image["tailored"]
    assert tailored["package_path"] == "/packages/package-registry"
    assert tailored["packages"] == sorted(f"packages/{n}/{n}-{v}.zip"
                                          for n, v in TAILORED_PACKAGES.items())
    index = document(tailored_bundle, image["digest"])
    assert index["mediaType"] == types[0]
    assert {(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]} \
        == {("linux", "amd64"), ("linux", "arm64")}
    for entry in index["manifests"]:
        platform = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
        manifest = document(tailored_bundle, entry["digest"])
        base_manifest = document(tailored_bundle, base.manifests[platform])
        assert entry["mediaType"] == manifest["mediaType"] == types[1]
        assert manifest["config"]["mediaType"] == types[2]
        # The base's layers unchanged, then the one layer, the same for every platform.
        assert manifest["layers"][:-1] == base_manifest["layers"]
        assert manifest["layers"][-1] == {"mediaType": types[3], "digest": tailored["layer"],
                                          "size": len(blob(tailored_bundle, tailored["layer"]))}
        if family == "oci":
            assert manifest["annotations"]["org.opencontainers.image.base.digest"] == \
                base.manifests[platform]
        else:
            assert "annotations" not in manifest
        config = document(tailored_bundle, manifest["config"]["digest"])
        base_config = document(tailored_bundle, base_manifest["config"]["digest"])
        assert config["rootfs"]["diff_ids"] == [*base_config["rootfs"]["diff_ids"],
                                                tailored["diff_id"]]
        assert config["config"] == base_config["config"]  # user 1000, entrypoint, health check
        assert config["history"][-1]["created_by"] == \
            "airgap: 4 verified packages in /packages/package-registry"
    layer = gzip.decompress(blob(tailored_bundle, tailored["layer"]))
    assert "sha256:" + hashlib.sha256(layer).hexdigest() == tailored["diff_id"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        found = {m.name.removeprefix("packages/package-registry/"): tar.extractfile(m).read()
                 for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
        assert [m.name for m in tar.getmembers() if m.isdir()] == [
            "packages", "packages/package-registry"]
    assert found == package_files(tailored_bundle)
    check = subprocess.run(["sha512sum", "--check", "--strict", "--quiet", "SHA512SUMS"],
                           cwd=tailored_bundle, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_verify_and_inspect_through_the_command_line(tailored_bundle: Path,
                                                    operator_key: Path) -> None:
    verified = in_pipe("verify", str(tailored_bundle), "--trust-key", str(operator_key),
                       timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith(f"intact: {tailored_bundle}")
    # It says the layer was read: 4 packages, the integrations' and Fleet's setup ones.
    assert "the tailored registry's layer read member by member against its 4 verified " \
        "packages" in verified.stdout
    # Without the operator's key nothing from outside vouches for the image, tailored or not.
    unvouched = in_pipe("verify", str(tailored_bundle), timeout=120)
    assert unvouched.returncode == 3
    assert "images/index.json unvouched" in unvouched.stdout
    seen = at_terminal("inspect", str(tailored_bundle))
    seen.assert_no_traceback()
    assert seen.code == 0, seen.text
    assert TAILORED in seen.text
    # The base's name, then what was added (folded to the terminal's width).
    assert re.search(r"tailored +\S+:v[\d.]+ \+ 4 packages \(layer\s+sha256:", seen.text), \
        seen.text
    contents = json.loads(in_pipe("inspect", str(tailored_bundle), "--json").stdout)["result"]
    assert contents["image"]["tailored"]["base"].endswith(
        f":v{package_registry.PACKAGE_REGISTRY_VERSION}")
    assert sorted(p["name"] for p in contents["packages"]) == sorted(TAILORED_PACKAGES)


def test_plan_shows_the_tailored_image_and_why_each_package_is_in_it(
        tmp_path: Path, registry: DockerRegistry, epr_server: EprServer,
        signer_public_key: Path) -> None:
    manifest = tailored_manifest(tmp_path / "site.yaml", registry, epr_server,
                                 signer_public_key, "oci", packages=["kafka@1.2.0"])
    seen = at_terminal("plan", str(manifest))
    seen.assert_no_traceback()
    assert seen.code == 0, seen.text
    for expected in (f"{TAILORED} (tailored: composed by airgap)",
                     f"package-registry/package-registry:v{package_registry.PACKAGE_REGISTRY_VERSION}",
                     "kafka@1.2.0", "← registry.packages (kafka@1.2.0)",
                     "← Fleet installs it at setup", "← integration nginx"):
        assert expected in seen.text, expected
    assert seen.lines[-1].startswith(f"{TAILORED} for 2 platform(s)")
    piped = in_pipe("plan", str(manifest), "--json")
    assert piped.returncode == 0, piped.stderr
    data = json.loads(piped.stdout)["result"]
    assert data["tailored"]["reference"] == TAILORED
    assert [p["name"] for p in data["packages"]] == ["nginx", "elastic_agent", "fleet_server",
                                                     "system", "kafka"]


def test_a_refetch_keeps_the_layer_and_composes_it_again_only_when_it_rotted(
        tmp_path: Path, registry: DockerRegistry, signer: SigningKey, signer_public_key: Path,
        server_images: dict[str, TestImage]) -> None:
    epr = EprServer(tmp_path / "epr", signer).start()
    try:
        publish_tailored_packages(epr)
        manifest = tailored_manifest(tmp_path / "site.yaml", registry, epr, signer_public_key,
                                     "oci")
        bundle = tmp_path / "bundle"
        reporter = RecordingReporter()
        first = fetch(FetchSettings(manifest, bundle), reporter)
        assert reporter.outcomes[f"compose {TAILORED}"] == "done"
        assert reporter.phases["compose"] == (sum(p.file.digests.size + p.signature.digests.size
                                                  for p in first.packages), None)
        again = RecordingReporter()
        second = fetch(FetchSettings(manifest, bundle), again)
        assert second.unchanged
        assert again.outcomes[f"compose {TAILORED}"] == "kept"  # not composed a second time
        assert second.image.stored == first.image.stored
        assert second.image.tailored == first.image.tailored
        assert all(p.file.reused and p.signature.reused for p in second.packages)
        assert second.removed == ()
        assert not (bundle / ".airgap-next").exists()
        # A layer that rotted in the bundle is not kept: composed again, put in its place.
        assert first.image.tailored is not None
        layer = bundle / "images/blobs/sha256" / first.image.tailored.layer[7:]
        data = bytearray(layer.read_bytes())
        data[100] ^= 0xFF
        layer.write_bytes(bytes(data))
        third = RecordingReporter()
        repaired = fetch(FetchSettings(manifest, bundle), third)
    finally:
        epr.stop()
    assert third.outcomes[f"compose {TAILORED}"] == "done" and not repaired.unchanged
    assert any("the packages layer from an earlier run does not match its digest" in m
               for _, m in third.messages)
    assert hashlib.sha256(layer.read_bytes()).hexdigest() == layer.name
    assert repaired.image.tailored == first.image.tailored  # the same layer, byte for byte


def test_the_preflights_estimate_of_the_layer_is_just_above_its_size(
        tailored_bundle: Path) -> None:
    description = json.loads((tailored_bundle / "bundle.json").read_text())
    tailored = description["image"]["tailored"]
    items = {i["path"]: i for i in description["items"]}
    files = [f for p in tailored["packages"] for f in (p, p + ".sig")]
    estimate = estimated_size(tailored["package_path"], files,
                              [items[f]["size"] for f in files])
    layer = blob(tailored_bundle, tailored["layer"])
    tar = len(gzip.decompress(layer))
    # Above the layer and above its tar (packages of real zips do not compress), by little.
    assert len(layer) < estimate and tar < estimate <= tar * 1.01 + (64 << 10)


def test_a_missing_package_stops_the_fetch_before_anything_is_composed(
        tmp_path: Path, registry: DockerRegistry, signer: SigningKey, signer_public_key: Path,
        server_images: dict[str, TestImage]) -> None:
    epr = EprServer(tmp_path / "epr", signer).start()
    try:
        epr.add("nginx", "2.0.0")
        epr.add("system", "2.1.0")
        manifest = tailored_manifest(tmp_path / "site.yaml", registry, epr, signer_public_key,
                                     "oci")
        bundle = tmp_path / "bundle"
        with pytest.raises(AirgapError) as caught:
            fetch(FetchSettings(manifest, bundle), NullReporter())
    finally:
        epr.stop()
    assert "package elastic_agent (Fleet installs it at setup): no version is compatible " \
        "with Kibana 9.0.0" in str(caught.value)
    assert "package fleet_server (Fleet installs it at setup)" in str(caught.value)
    assert not (bundle / "packages").exists()
    assert not (bundle / "SHA512SUMS").exists()


def test_attestations_are_dropped_with_a_note_and_a_single_manifest_base_works(
        tmp_path: Path, registry: DockerRegistry, signer: SigningKey, signer_public_key: Path
        ) -> None:
    attested = build_test_image(tmp_path / "attested", tag="v2", shared_layers=(),
                                server=True, platforms=("linux/amd64", "unknown/unknown"))
    push_image(attested, registry.host, "airgap-test/attested")
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                    "--override-arch", "amd64", f"oci:{attested.layout}:v2",
                    f"docker://{registry.host}/airgap-test/single:v2"],
                   check=True, capture_output=True, timeout=300)
    epr = EprServer(tmp_path / "epr", signer).start()
    try:
        publish_tailored_packages(epr)
        results = {}
        for name, base in (("attested", "registry.test/airgap-test/attested:v2"),
                           ("single", "registry.test/airgap-test/single:v2")):
            manifest = tailored_manifest(tmp_path / f"{name}.yaml", registry, epr,
                                         signer_public_key, "oci", arch=("x86_64",),
                                         base=base)
            reporter = RecordingReporter()
            results[name] = (fetch(FetchSettings(manifest, tmp_path / "bundles" / name),
                                   reporter), reporter)
    finally:
        epr.stop()
    attested_result, attested_reporter = results["attested"]
    note = ("registry.test/airgap-test/attested:v2: the 1 attestation manifest(s) of its index "
            "(platform unknown/unknown) describe the base, not the tailored image, and are "
            "left out")
    assert ("info", note) in attested_reporter.messages
    notes = json.loads((tmp_path / "bundles/attested/bundle.json").read_text())["notes"]
    assert note in notes
    assert [p.platform for p in attested_result.image.platforms] == ["linux/amd64"]
    single_result, _ = results["single"]
    index = document(tmp_path / "bundles/single", single_result.image.stored.digest)
    assert [m["platform"] for m in index["manifests"]] == [{"architecture": "amd64",
                                                            "os": "linux"}]
    assert single_result.image.upstream_media_type == OCI_TYPES[1]


def test_the_server_image_comes_from_sources_registry_by_its_v_tag(
        tailored_bundle: Path, registry: DockerRegistry) -> None:
    description = json.loads((tailored_bundle / "bundle.json").read_text())
    source = description["image"]["source"]
    assert source.startswith(registry.url)
    assert source.endswith(f":v{package_registry.PACKAGE_REGISTRY_VERSION}")
    if description["image"]["media_type"] == OCI_TYPES[0]:
        assert f"/{SERVER_REPOSITORY}:" in source


def test_fetch_through_a_pipe_says_what_it_composed(
        tmp_path: Path, registry: DockerRegistry, signer: SigningKey, signer_public_key: Path,
        server_images: dict[str, TestImage]) -> None:
    epr = EprServer(tmp_path / "epr", signer).start()
    try:
        publish_tailored_packages(epr)
        manifest = tailored_manifest(tmp_path / "site.yaml", registry, epr, signer_public_key,
                                     "docker")
        bundle = tmp_path / "bundle"
        result = in_pipe("fetch", str(manifest), "-o", str(bundle), timeout=300)
    finally:
        epr.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    # The log: the compose phase begins and ends, its one item with what was made.
    log = result.stderr
    assert f"compose: {TAILORED}: 4 packages onto " in log, log
    assert re.search(r"done +packages layer of .*composed: sha256:", log), log
    assert "part tailored image (linux/amd64, linux/arm64)" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("done: ")
    assert (bundle / "SHA512SUMS").is_file()
    image = json.loads((bundle / "bundle.json").read_text())["image"]
    assert image["reference"] == TAILORED and image["media_type"] == DOCKER_TYPES[0]
