"""Composing an image offline: a deterministic layer, and documents of the base's family."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from airgap.errors import ChecksumMismatchError
from airgap.oci.compose import (
    DOCKER,
    OCI,
    LayerFile,
    compose_config,
    compose_index,
    compose_manifest,
    family_of,
    write_layer,
)
from airgap.oci.layout import Layout
from airgap.oci.media import DOCKER_MANIFEST, OCI_MANIFEST, Descriptor


def files(folder: Path, contents: dict[str, bytes]) -> list[LayerFile]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name, data in contents.items():
        source = folder / name
        source.write_bytes(data)
        made.append(LayerFile(f"packages/package-registry/{name}", source, len(data),
                              hashlib.sha512(data).hexdigest()))
    return made


PACKAGES = {"nginx-2.0.0.zip": b"PK" + bytes(range(256)) * 40, "nginx-2.0.0.zip.sig": b"sig",
            "apache-1.0.0.zip": b"PK apache", "apache-1.0.0.zip.sig": b"sig2" * 200}


def test_the_layer_is_a_deterministic_tar_with_explicit_folders(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "images")
    layer = write_layer(layout, files(tmp_path / "src", PACKAGES), OCI.layer)
    blob = layer.path.read_bytes()
    assert layer.path.name == hashlib.sha256(blob).hexdigest() == layer.descriptor.hex
    assert layer.descriptor.size == len(blob) and layer.descriptor.media_type == OCI.layer
    assert layer.digests.sha512 == hashlib.sha512(blob).hexdigest()
    # A gzip header with no name and no time, whatever machine wrote it.
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    tar_bytes = gzip.decompress(blob)
    assert layer.diff_id == "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [
            "packages", "packages/package-registry",
            "packages/package-registry/apache-1.0.0.zip",
            "packages/package-registry/apache-1.0.0.zip.sig",
            "packages/package-registry/nginx-2.0.0.zip",
            "packages/package-registry/nginx-2.0.0.zip.sig"]
        for member in members:
            assert (member.uid, member.gid, member.mtime) == (0, 0, 0)
            assert member.mode == (0o755 if member.isdir() else 0o644)
            assert member.isdir() or member.isreg()
            if member.isreg():
                handle = tar.extractfile(member)
                assert handle is not None
                assert handle.read() == PACKAGES[member.name.rsplit("/", 1)[1]]
    assert sorted(p.name for p in layout.blobs.iterdir()) == [layer.path.name]  # no leftovers


def test_the_same_files_make_the_same_layer_and_other_files_another(tmp_path: Path) -> None:
    first = write_layer(Layout(tmp_path / "a"), files(tmp_path / "src-a", PACKAGES), OCI.layer)
    again = write_layer(Layout(tmp_path / "b"), files(tmp_path / "src-b", PACKAGES), OCI.layer)
    assert (first.descriptor.digest, first.diff_id) == (again.descriptor.digest, again.diff_id)
    changed = write_layer(Layout(tmp_path / "c"), files(tmp_path / "src-c", {
        **PACKAGES, "nginx-2.0.0.zip.sig": b"siG"}), OCI.layer)
    assert changed.diff_id != first.diff_id


def test_a_file_changed_since_it_was_verified_is_refused_and_nothing_stays(
        tmp_path: Path) -> None:
    layout = Layout(tmp_path / "images")
    made = files(tmp_path / "src", PACKAGES)
    made[0].source.write_bytes(b"PK" + b"\0" * (made[0].size - 2))  # same size, other bytes
    with pytest.raises(ChecksumMismatchError, match="changed since it was verified"):
        write_layer(layout, made, OCI.layer)
    assert list(layout.blobs.iterdir()) == []


def test_config_manifest_and_index_keep_the_base_and_add_the_layer() -> None:
    base_config = {"architecture": "arm64", "os": "linux", "variant": "v8",
                   "config": {"User": "1000", "Entrypoint": ["./package-registry"]},
                   "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]},
                   "history": [{"created_by": "COPY package-registry"}]}
    config = json.loads(compose_config(base_config, "sha256:" + "b" * 64, "airgap: 4 packages"))
    assert config["config"] == base_config["config"] and config["variant"] == "v8"
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    assert [h["created_by"] for h in config["history"]] == ["COPY package-registry",
                                                            "airgap: 4 packages"]
    layer = Descriptor(DOCKER.layer, "sha256:" + "c" * 64, 10)
    new_config = Descriptor(DOCKER.config, "sha256:" + "d" * 64, 20)
    base = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER.config, "digest": "sha256:" + "e" * 64, "size": 5},
            "layers": [{"mediaType": DOCKER.layer, "digest": "sha256:" + "f" * 64, "size": 7}]}
    docker = json.loads(compose_manifest(base, DOCKER, new_config, layer, "b:v1", "sha256:x"))
    assert docker["config"]["digest"] == new_config.digest
    assert [entry["digest"] for entry in docker["layers"]] == ["sha256:" + "f" * 64,
                                                               layer.digest]
    assert "annotations" not in docker  # Docker's v2 manifests carry none
    oci_base = {**base, "mediaType": OCI_MANIFEST, "subject": {"digest": "sha256:" + "9" * 64},
                "annotations": {"org.example": "kept"}}
    oci = json.loads(compose_manifest(oci_base, OCI, new_config, layer, "b:v1", "sha256:x"))
    assert "subject" not in oci  # it named the base, not this image
    assert oci["annotations"] == {"org.example": "kept",
                                  "org.opencontainers.image.base.name": "b:v1",
                                  "org.opencontainers.image.base.digest": "sha256:x"}
    index = json.loads(compose_index(DOCKER, [(Descriptor(DOCKER_MANIFEST, "sha256:" + "1" * 64,
                                                          3), {"os": "linux",
                                                               "architecture": "amd64"})]))
    assert index["mediaType"] == DOCKER.index
    assert index["manifests"][0]["platform"] == {"os": "linux", "architecture": "amd64"}
    assert family_of(OCI_MANIFEST) is OCI and family_of(DOCKER_MANIFEST) is DOCKER
