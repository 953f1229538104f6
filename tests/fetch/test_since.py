"""airgap fetch --since: a delta carries what its base lacks, and nothing is downloaded
for what the base holds; merged, it is byte for byte the bundle a full fetch writes."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from airgap.bundle import parse_sums
from airgap.carry.merge import MergeSettings, merge
from airgap.cli import main
from airgap.errors import BundleError, UsageError
from airgap.fetch.run import FetchResult, FetchSettings, fetch
from airgap.manifest import load_manifest
from airgap.manifest.plan import make_plan
from airgap.reporter import NullReporter
from tests.conftest import DEFEND_ARTIFACTS, TEST_REPOSITORY, ManifestMaker, grown_tailored_site
from tests.peers.artifacts import ArtifactServer
from tests.peers.defend import DefendServer
from tests.peers.epr import EprServer
from tests.peers.gpgkeys import SigningKey
from tests.peers.images import TestImage, build_test_image, push_image
from tests.peers.processes import DockerRegistry
from tests.peers.registry_front import RegistryFront

PATCH_TAG = "9.0.1"


@pytest.fixture(scope="session")
def patch_image(pushed_image: TestImage, registry: DockerRegistry,
                tmp_path_factory: pytest.TempPathFactory) -> TestImage:
    """The registry image of a stack patch release: a new packages layer, the same
    platform layers (the test image's are built reproducibly), pushed as 9.0.1."""
    image = build_test_image(tmp_path_factory.mktemp("patch-image") / "layout",
                             tag=PATCH_TAG, shared_layers=(256 << 10,))
    push_image(image, registry.host, TEST_REPOSITORY)
    return image


def site(make_manifest: ManifestMaker, front: RegistryFront, artifacts: ArtifactServer,
         epr: EprServer, name: str, defend: DefendServer | None = None, **keys: Any) -> Path:
    """A manifest for the stand-ins (the registry behind docker.elastic.co's front, which
    logs every request; Elastic Defend's server when given), its artifacts published."""
    keys.setdefault("platforms", {"arch": ["x86_64"]})
    keys.setdefault("integrations", ["system", "nginx"])
    sources = {"registry": front.url}
    if defend is not None:
        sources["security"] = defend.url
        if not defend.root.joinpath("downloads").exists():
            defend.publish("9.0.0", "1.0.137", DEFEND_ARTIFACTS)
    path = make_manifest(artifacts_from=artifacts, epr_from=epr, name=name, sources=sources,
                         **keys)
    for item in make_plan(load_manifest(path)).artifacts:
        if not (artifacts.root / item.path).exists():
            artifacts.publish(item.path, 20_000)
    return path


def run_fetch(manifest: Path, bundle: Path, operator: SigningKey | None = None,
              **options: Any) -> FetchResult:
    if operator is not None:
        options.update(sign_with=operator.fingerprint, gnupg_home=operator.home)
    return fetch(FetchSettings(manifest=manifest, bundle=bundle, jobs=4, **options),
                 NullReporter())


def sums_of(bundle: Path) -> dict[str, str]:
    entries, problems = parse_sums((bundle / "SHA512SUMS").read_text())
    assert problems == []
    return entries


def files_of(bundle: Path) -> set[str]:
    return {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}


def described(bundle: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((bundle / "bundle.json").read_text())
    return document


def identity(bundle: Path) -> str:
    return hashlib.sha512((bundle / "SHA512SUMS").read_bytes()).hexdigest()


def assert_same_bundle(merged: Path, full: Path) -> None:
    """Byte for byte the same files; bundle.json the same but for its timestamp."""
    assert files_of(merged) == files_of(full)
    for path in files_of(full) - {"bundle.json", "SHA512SUMS", "SHA512SUMS.asc"}:
        assert (merged / path).read_bytes() == (full / path).read_bytes(), path
    ours, theirs = described(merged), described(full)
    for document in (ours, theirs):  # the times of the fetch: when, not what
        assert document.pop("created") != ""
        for record in document.get("defend", []):
            assert record.pop("fetched") != ""
    assert ours == theirs
    merged_sums, full_sums = sums_of(merged), sums_of(full)
    merged_sums.pop("bundle.json")
    full_sums.pop("bundle.json")
    assert merged_sums == full_sums


def sha512sum_check(bundle: Path) -> None:
    check = subprocess.run(["sha512sum", "--check", "--strict", "SHA512SUMS"], cwd=bundle,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_new_integration_carries_only_its_files_and_downloads_nothing_the_base_holds(
        make_manifest: ManifestMaker, registry_front: RegistryFront, pushed_image: TestImage,
        artifact_server: ArtifactServer, epr_server: EprServer, defend_server: DefendServer,
        operator: SigningKey, operator_key: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = site(make_manifest, registry_front, artifact_server, epr_server, "before.yaml")
    # Elastic Defend's integration: its package, its binary, and its protection artifacts.
    after = site(make_manifest, registry_front, artifact_server, epr_server, "after.yaml",
                 defend_server, integrations=["system", "nginx", "endpoint"])
    base = tmp_path / "base"
    run_fetch(before, base, operator)
    artifacts_seen, epr_seen = len(artifact_server.faults.log), len(epr_server.faults.log)
    registry_seen = len(registry_front.faults.log)

    delta = tmp_path / "delta"
    result = run_fetch(after, delta, operator, since=base)

    # Nothing the base holds was downloaded: only the documents that say what is current.
    # Every source is asked first (a HEAD each); nothing is downloaded (a GET) that the
    # base holds.
    artifact_gets = [r.path for r in artifact_server.faults.log[artifacts_seen:]
                     if r.method == "GET"]
    file_gets = [p for p in artifact_gets if not p.endswith((".sha512", ".asc"))]
    assert file_gets and all("endpoint-security" in p for p in file_gets)
    package_gets = [r.path for r in epr_server.faults.log[epr_seen:]
                    if r.path.endswith(".zip") and r.method == "GET"]
    assert package_gets == ["/epr/endpoint/endpoint-9.0.0.zip"]
    blob_gets = [r.path for r in registry_front.faults.log[registry_seen:]
                 if "/blobs/" in r.path and r.method == "GET"]
    assert blob_gets == [], "the image is the base's: no blob is downloaded"

    # The delta: what it carries is what the base lacks (and the keys), sha512sum -c works.
    base_sums = sums_of(base)
    document = described(delta)
    assert document["format"] == 3
    assert document["delta"]["base"] == identity(base)
    carried = {i["path"] for i in document["items"] if i["origin"] == "carried"}
    for item in document["items"]:
        held = item["sha512"] in base_sums.values()
        assert item["origin"] == ("carried" if not held or item["kind"] == "key" else "base")
    new_files = {p for p in carried if not p.startswith("keys/")}
    assert new_files and all("endpoint" in p for p in new_files)
    assert {i["kind"] for i in document["items"] if i["origin"] == "carried"} >= {
        "package", "artifact", "defend-manifest", "defend-artifact"}
    assert set(sums_of(delta)) == carried | {"bundle.json"}
    assert files_of(delta) == carried | {"bundle.json", "SHA512SUMS", "SHA512SUMS.asc"}
    sha512sum_check(delta)
    assert result.delta is not None and result.delta.carried_files == len(carried)

    # verify says it is a delta of the base; the signature covers both.
    assert main(["verify", str(delta), "--json", "--trust-key", str(operator_key)]) == 0
    envelope = json.loads(capsys.readouterr().out)
    report = {**envelope["result"], "problems": envelope["problems"]}
    assert report["ok"] and report["delta_of"] == identity(base)
    assert report["operator_signature"] == "valid"

    # Merged, it is the bundle a full fetch writes.
    new = tmp_path / "new"
    merged = merge(MergeSettings(base, delta, new, (operator_key,)), NullReporter())
    assert merged.report.ok and merged.report.operator_signature == "valid"
    full = tmp_path / "full"
    run_fetch(after, full, operator)
    assert_same_bundle(new, full)
    assert identity(new) == document["delta"]["target"]


def test_a_stack_patch_bump_carries_the_new_layer_and_binaries_not_the_old_layers(
        make_manifest: ManifestMaker, registry_front: RegistryFront, pushed_image: TestImage,
        patch_image: TestImage, artifact_server: ArtifactServer, epr_server: EprServer,
        tmp_path: Path) -> None:
    before = site(make_manifest, registry_front, artifact_server, epr_server, "before.yaml",
                  platforms={"arch": ["x86_64", "arm64"]})
    after = site(make_manifest, registry_front, artifact_server, epr_server, "after.yaml",
                 platforms={"arch": ["x86_64", "arm64"]}, version=PATCH_TAG)
    base = tmp_path / "base"
    run_fetch(before, base)
    registry_seen = len(registry_front.faults.log)
    delta = tmp_path / "delta"
    run_fetch(after, delta, since=base)

    blob_gets = {r.path.rsplit("/", 1)[-1] for r in registry_front.faults.log[registry_seen:]
                 if "/blobs/" in r.path and r.method == "GET"}
    platform_layers = set(patch_image.platform_layers.values())
    assert platform_layers == set(pushed_image.platform_layers.values())
    assert not blob_gets & platform_layers, "the platform layers the base holds"
    assert set(patch_image.shared_layers) <= blob_gets
    carried = {i["path"] for i in described(delta)["items"] if i["origin"] == "carried"}
    assert {f"images/blobs/sha256/{d.removeprefix('sha256:')}"
            for d in patch_image.shared_layers} <= carried
    assert not any(f"images/blobs/sha256/{d.removeprefix('sha256:')}" in carried
                   for d in platform_layers)
    assert all("9.0.1" in p for p in carried if p.startswith("downloads/"))
    assert not any(p.startswith("packages/") for p in carried), "the same package versions"

    new = tmp_path / "new"
    merge(MergeSettings(base, delta, new), NullReporter())
    full = tmp_path / "full"
    run_fetch(after, full)
    assert_same_bundle(new, full)


def test_nothing_changed_carries_only_the_description_and_the_keys(
        make_manifest: ManifestMaker, registry_front: RegistryFront, pushed_image: TestImage,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    manifest = site(make_manifest, registry_front, artifact_server, epr_server, "site.yaml")
    base = tmp_path / "base"
    run_fetch(manifest, base)
    # The connected side keeps only bundle.json and SHA512SUMS of what it sent.
    record = tmp_path / "record"
    record.mkdir()
    for name in ("bundle.json", "SHA512SUMS"):
        shutil.copy(base / name, record / name)
    delta = tmp_path / "delta"
    assert main(["fetch", str(manifest), "-o", str(delta), "--since", str(record),
                 "--quiet"]) == 0
    keys = {p for p in sums_of(base) if p.startswith("keys/")}
    assert set(sums_of(delta)) == {"bundle.json"} | keys
    out = " ".join(capsys.readouterr().out.split())
    total = len(described(delta)["items"])
    assert f"a delta of the bundle sha512:{identity(base)[:32]}: it carries {len(keys)} of " \
           f"{total} files" in out
    target = described(delta)["delta"]["target"]
    assert f"merged, it makes the bundle sha512:{target[:32]}" in out

    new = tmp_path / "new"
    merge(MergeSettings(base, delta, new), NullReporter())
    assert sums_of(new).keys() == sums_of(base).keys()
    assert {p: d for p, d in sums_of(new).items() if p != "bundle.json"} == \
        {p: d for p, d in sums_of(base).items() if p != "bundle.json"}


def test_a_delta_of_a_delta_takes_the_merged_bundle_as_its_base(
        make_manifest: ManifestMaker, registry_front: RegistryFront, pushed_image: TestImage,
        artifact_server: ArtifactServer, epr_server: EprServer, defend_server: DefendServer,
        tmp_path: Path) -> None:
    one = site(make_manifest, registry_front, artifact_server, epr_server, "one.yaml")
    two = site(make_manifest, registry_front, artifact_server, epr_server, "two.yaml",
               integrations=["system", "nginx", "fleet_server"])
    three = site(make_manifest, registry_front, artifact_server, epr_server, "three.yaml",
                 defend_server, integrations=["system", "nginx", "fleet_server", "endpoint"])
    base = tmp_path / "base"
    run_fetch(one, base)
    first = tmp_path / "first"
    run_fetch(two, first, since=base)
    # The connected side kept only the first delta's bundle.json and SHA512SUMS.
    second = tmp_path / "second"
    run_fetch(three, second, since=first)
    middle = tmp_path / "middle"
    merge(MergeSettings(base, first, middle), NullReporter())
    assert described(second)["delta"]["base"] == identity(middle)
    last = tmp_path / "last"
    merge(MergeSettings(middle, second, last), NullReporter())
    full = tmp_path / "full"
    run_fetch(three, full)
    assert_same_bundle(last, full)


def test_the_delta_goes_into_a_folder_of_its_own(
        make_manifest: ManifestMaker, registry_front: RegistryFront, pushed_image: TestImage,
        artifact_server: ArtifactServer, epr_server: EprServer, tmp_path: Path) -> None:
    manifest = site(make_manifest, registry_front, artifact_server, epr_server, "site.yaml")
    base = tmp_path / "base"
    run_fetch(manifest, base)
    before = {p: (base / p).read_bytes() for p in files_of(base)}
    seen = len(artifact_server.faults.requests(method="GET"))
    with pytest.raises(UsageError, match="are the same folder"):
        run_fetch(manifest, base, since=base)
    other = tmp_path / "other"
    run_fetch(manifest, other)
    with pytest.raises(BundleError, match="is a complete bundle: a delta written there"):
        run_fetch(manifest, other, since=base)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match="cannot read its SHA512SUMS"):
        run_fetch(manifest, tmp_path / "delta", since=empty)
    assert {p: (base / p).read_bytes() for p in files_of(base)} == before
    assert not (other / ".airgap.lock").exists()
    assert len(artifact_server.faults.requests(method="GET")) == seen + len(make_plan(
        load_manifest(manifest)).artifacts) * 3, "only the full fetch of other/ downloaded"


def test_a_tailored_registry_delta_downloads_its_packages_and_carries_only_what_is_new(
        registry: DockerRegistry, epr_server: EprServer, signer_public_key: Path,
        server_images: dict[str, TestImage], operator: SigningKey, operator_key: Path,
        tmp_path: Path) -> None:
    # The layer is composed from the zips themselves: with --since they are downloaded all
    # the same, and only the new package and the new layer are carried.
    base, more = grown_tailored_site(tmp_path / "site", registry, epr_server,
                                     signer_public_key, operator, extra_size=1 << 20)
    delta = tmp_path / "delta"
    run_fetch(more, delta, operator, since=base)
    described = json.loads((delta / "bundle.json").read_text())
    carried = {i["path"] for i in described["items"] if i["origin"] == "carried"}
    layer = described["image"]["tailored"]["layer"]
    assert "packages/kafka/kafka-1.0.0.zip" in carried
    assert "packages/nginx/" not in " ".join(carried)
    assert f"images/blobs/sha256/{layer.removeprefix('sha256:')}" in carried
    new = tmp_path / "new"
    assert main(["merge", str(base), str(delta), "-o", str(new), "--trust-key",
                 str(operator_key), "--quiet"]) == 0
    assert main(["verify", str(new), "--trust-key", str(operator_key), "--quiet"]) == 0
    assert "packages/kafka/kafka-1.0.0.zip" in \
        json.loads((new / "bundle.json").read_text())["image"]["tailored"]["packages"]


def test_defends_artifacts_are_downloaded_again_and_carried_only_when_they_changed(
        make_manifest: ManifestMaker, registry_front: RegistryFront, pushed_image: TestImage,
        artifact_server: ArtifactServer, epr_server: EprServer, defend_server: DefendServer,
        tmp_path: Path) -> None:
    manifest = site(make_manifest, registry_front, artifact_server, epr_server, "site.yaml",
                    defend_server, integrations=["system", "endpoint"])
    base = tmp_path / "base"
    run_fetch(manifest, base)

    def delta_of_base(name: str) -> tuple[Path, list[str], dict[str, str]]:
        """The delta, the Defend files it downloaded, and what it carries by kind."""
        defend_server.faults.clear()
        delta = tmp_path / name
        run_fetch(manifest, delta, since=base)
        gets = [r.path for r in defend_server.faults.requests("/downloads/*", method="GET")]
        carried = {i["path"]: i["kind"] for i in described(delta)["items"]
                   if i["origin"] == "carried" and i["kind"].startswith("defend")}
        return delta, gets, carried

    # Elastic's manifest unchanged: the manifest and every artifact are downloaded (the
    # manifest says what is current only once fetched), none carried. The manifest is
    # asked for once: the pre-flight reads it (to count its artifacts), the fetch keeps that.
    _, gets, carried = delta_of_base("same")
    assert len([g for g in gets if "/manifest/" in g]) == 1
    assert len([g for g in gets if "/artifacts/" in g]) == len(DEFEND_ARTIFACTS)
    assert carried == {}

    # Elastic updated one artifact: the new manifest and that artifact alone are carried.
    defend_server.publish("9.0.0", "1.0.138", {**DEFEND_ARTIFACTS,
                                               "production-rules-linux-v1": b"rule 2\n" * 9})
    delta, _, carried = delta_of_base("updated")
    assert sorted(carried.values()) == ["defend-artifact", "defend-manifest"]
    assert any("production-rules-linux-v1" in p for p in carried)
    new = tmp_path / "new"
    assert merge(MergeSettings(base, delta, new), NullReporter()).report.ok
    assert [d["manifest_version"] for d in described(new)["defend"]] == ["1.0.138"]
    assert described(new)["defend"][0]["fetched"] == described(delta)["defend"][0]["fetched"]
