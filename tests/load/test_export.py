"""export-image: a tar the real dockerd loads and runs, and skopeo reads, made offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from airgap.cli import main
from airgap.errors import ChecksumMismatchError, UsageError
from airgap.load.export import export_image
from tests.conftest import TEST_REPOSITORY, TEST_TAG
from tests.medium import add_mac_and_windows_files
from tests.peers.images import TestImage
from tests.peers.net import free_port, wait_until
from tests.peers.processes import Containerd, Dockerd
from tests.terminal import in_pipe

REFERENCE = f"docker.elastic.co/{TEST_REPOSITORY}:{TEST_TAG}"


def leftovers(folder: Path) -> list[Path]:
    """Temporary files a write left in ``folder``."""
    return [*folder.glob("*.part"), *folder.glob(".*.part")]


def test_tar_has_docker_25_layout(image_bundle: Path, pushed_image: TestImage,
                                  tmp_path: Path) -> None:
    result = export_image(image_bundle, "linux/arm64", tmp_path / "img.tar")
    assert result.platform == "linux/arm64/v8" or result.platform == "linux/arm64"
    with tarfile.open(tmp_path / "img.tar") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert names[:3] == ["oci-layout", "index.json", "manifest.json"]
    assert manifest[0]["RepoTags"] == [REFERENCE]
    assert manifest[0]["Layers"] == [f"blobs/sha256/{d[7:]}" for d in
                                     (*pushed_image.shared_layers,
                                      pushed_image.platform_layers["linux/arm64"])]
    assert index["manifests"][0]["digest"] == pushed_image.manifests["linux/arm64"]
    assert all(n in names for n in manifest[0]["Layers"] + [manifest[0]["Config"]])
    assert leftovers(tmp_path) == []


def test_skopeo_reads_it_as_oci_and_docker_archive(image_bundle: Path, pushed_image: TestImage,
                                                   tmp_path: Path) -> None:
    export_image(image_bundle, "linux/amd64", tmp_path / "img.tar")
    layers = [*pushed_image.shared_layers, pushed_image.platform_layers["linux/amd64"]]
    manifest = json.loads((image_bundle / "images" / "blobs" / "sha256" /
                           pushed_image.manifests["linux/amd64"][7:]).read_text())
    config = json.loads((image_bundle / "images" / "blobs" / "sha256" /
                         manifest["config"]["digest"][7:]).read_text())
    # oci-archive names layers by their blob digests, docker-archive by their diff IDs.
    for transport, expected in (("oci-archive", layers),
                                ("docker-archive", config["rootfs"]["diff_ids"])):
        info = json.loads(subprocess.run(["skopeo", "inspect", f"{transport}:{tmp_path}/img.tar"],
                                         capture_output=True, text=True, check=True).stdout)
        assert info["Architecture"] == "amd64"
        assert info["Layers"] == expected


def test_docker_loads_it_and_the_container_answers_health(image_bundle: Path, dockerd: Dockerd,
                                                          tmp_path: Path) -> None:
    tar = tmp_path / "img.tar"
    assert main(["export-image", str(image_bundle), "--platform", "linux/amd64", "-o", str(tar),
                 "--tag", "registry.local/epr:9.0.0", "--skip-verify"]) == 0
    env = dockerd.env()
    loaded = subprocess.run(["docker", "load", "-i", str(tar)], env=env, capture_output=True,
                            text=True, check=True)
    assert f"Loaded image: {REFERENCE}" in loaded.stdout
    assert "Loaded image: registry.local/epr:9.0.0" in loaded.stdout
    port = free_port()
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "--pull", "never", "--network", "host",
         "-e", f"EPR_ADDRESS=127.0.0.1:{port}", REFERENCE],
        env=env, capture_output=True, text=True, check=True).stdout.strip()
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200, 30,
                   "the loaded image answering /health")
    finally:
        subprocess.run(["docker", "rm", "-f", container], env=env, capture_output=True)


def test_containerd_imports_and_unpacks_it_as_dockers_containerd_store_does(
        image_bundle: Path, containerd: Containerd, pushed_image: TestImage,
        tmp_path: Path) -> None:
    # Docker 24+ with the containerd image store runs `docker load` through containerd's
    # own importer (client.Import, then unpack): the one `ctr images import` runs too.
    tar = tmp_path / "img.tar"
    export_image(image_bundle, "linux/arm64", tar, ["registry.local/epr:9.0.0"])
    imported = containerd.ctr("images", "import", "--platform", "linux/arm64",
                              "--snapshotter", "native", "--digests",
                              "--skip-digest-for-named", str(tar))
    assert imported.returncode == 0, imported.stderr
    rows = [line.split() for line in containerd.ctr("images", "ls").stdout.splitlines()[1:]]
    digests = {row[0]: row[2] for row in rows}
    manifest = pushed_image.manifests["linux/arm64"]
    assert digests[REFERENCE] == manifest
    assert digests["registry.local/epr:9.0.0"] == manifest
    # Unpacked: every layer applied and checked against the config's diff IDs.
    check = containerd.ctr("images", "check", f"name=={REFERENCE}")
    assert check.returncode == 0 and "complete" in check.stdout, check.stdout + check.stderr
    snapshots = containerd.ctr("snapshots", "--snapshotter", "native", "ls").stdout
    assert len(snapshots.splitlines()) - 1 >= len(json.loads(
        (image_bundle / "images/blobs/sha256" / manifest[7:]).read_text())["layers"])


def test_extra_names_are_written_as_docker_keeps_them(image_bundle: Path,
                                                     tmp_path: Path) -> None:
    export_image(image_bundle, "linux/amd64", tmp_path / "img.tar", ["epr.local/registry"])
    with tarfile.open(tmp_path / "img.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [REFERENCE, "epr.local/registry:latest"]
    # index.json too (containerd names images from it alone), one entry per name ...
    assert [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]] == \
        [REFERENCE, "epr.local/registry:latest"]
    assert len({m["digest"] for m in index["manifests"]}) == 1
    # ... and the original tag still selects exactly one image for skopeo.
    info = json.loads(subprocess.run(
        ["skopeo", "inspect", f"oci-archive:{tmp_path}/img.tar:{TEST_TAG}"],
        capture_output=True, text=True, check=True).stdout)
    assert info["Architecture"] == "amd64"
    with pytest.raises(UsageError, match="not an image name Docker accepts"):
        export_image(image_bundle, "linux/amd64", tmp_path / "bad.tar", ["Bad Name"])
    assert not (tmp_path / "bad.tar").exists()


def test_unknown_platform_is_a_usage_error(image_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="has no linux/ppc64le platform; it has linux/amd64, "
                                         "linux/arm64"):
        export_image(image_bundle, "linux/ppc64le", tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()


def test_a_malformed_platform_is_a_usage_error(image_bundle: Path, tmp_path: Path) -> None:
    assert main(["export-image", str(image_bundle), "--platform", "linux/amd64/v1/x", "-o",
                 str(tmp_path / "x.tar")]) == 2
    assert not (tmp_path / "x.tar").exists()


def test_a_damaged_layer_fails_the_export_and_leaves_no_tar(
        image_bundle: Path, pushed_image: TestImage, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(image_bundle, bundle)
    layer = bundle / "images/blobs/sha256" / pushed_image.shared_layers[0].removeprefix("sha256:")
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: only the digest can tell
    layer.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="does not match its digest"):
        export_image(bundle, "linux/amd64", tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists() and leftovers(tmp_path) == []
    config = bundle / "images/blobs/sha256" / json.loads(
        (bundle / "images/blobs/sha256" / pushed_image.manifests["linux/amd64"][7:]).read_text()
    )["config"]["digest"][7:]
    config.write_text(config.read_text().replace("amd64", "arm64"))
    with pytest.raises(ChecksumMismatchError):
        export_image(bundle, "linux/amd64", tmp_path / "x.tar")


def test_export_keeps_to_the_trust_rule_of_load(
        golden_bundle: Path, operator_key: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    tar = tmp_path / "epr.tar"
    # Nobody outside the bundle vouched for its SHA512SUMS: no image leaves it.
    assert main(["export-image", str(golden_bundle), "--platform", "linux/amd64", "-o",
                 str(tar), "--quiet"]) == 3
    captured = capsys.readouterr()
    assert "images/index.json" in captured.out and "--trust-key" in captured.out
    assert "no image was written" in captured.err
    assert not tar.exists() and leftovers(tmp_path) == []
    assert main(["export-image", str(golden_bundle), "--platform", "linux/amd64", "-o",
                 str(tar), "--trust-key", str(operator_key), "--quiet"]) == 0
    assert tarfile.is_tarfile(tar)


def test_export_checks_its_options_before_verifying(golden_bundle: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-image", str(golden_bundle), "--platform", "linux/amd64/v1/x", "-o",
                 str(tmp_path / "x.tar"), "--quiet"]) == 2
    assert "--platform" in capsys.readouterr().err


def test_leftovers_of_a_killed_export_are_removed_by_the_next(
        image_bundle: Path, tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = tmp_path / f".img.tar.{gone.pid}.0123abcd.part"
    dead.write_bytes(b"half a tar")
    unrelated = tmp_path / f".other.tar.{gone.pid}.0123abcd.part"
    unrelated.write_bytes(b"not ours to judge")
    export_image(image_bundle, "linux/amd64", tmp_path / "img.tar")
    assert not dead.exists() and unrelated.exists()


def test_finders_files_in_the_images_are_a_warning_and_never_in_the_tar(
        golden_bundle: Path, operator_key: Path, tmp_path: Path) -> None:
    bundle = shutil.copytree(golden_bundle, tmp_path / "bundle")
    counts = add_mac_and_windows_files(bundle)
    tar = tmp_path / "epr.tar"
    done = in_pipe("export-image", str(bundle), "--platform", "linux/amd64", "-o", str(tar),
                   "--trust-key", str(operator_key))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{bundle}: {counts['appledouble']} AppleDouble files" in " ".join(
        done.stderr.split())
    with tarfile.open(tar) as archive:
        assert not [m.name for m in archive.getmembers()
                    if "._" in m.name or "DS_Store" in m.name]
