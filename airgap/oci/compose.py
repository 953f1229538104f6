"""An image composed offline: a base image plus one layer of files, without a daemon.

The layer is a deterministic tar — the epoch as every mtime, owner 0:0, directories 0755,
files 0644, every parent directory given, no whiteouts, members in name order, ustar
headers — so the same files always make the same layer, on any machine. It is written
in one streaming pass: each chunk of each file is hashed (SHA-512, checked against what
the file was verified as), added to the diff ID (SHA-256 of the tar) and gzip-compressed;
the compressed bytes are hashed (sha256 for the blob's name, SHA-512 for SHA512SUMS) on
their way to the blob file. Nothing is held in memory whole.

Each platform gets a config with the layer's diff ID and a history entry, and a manifest
with the layer appended; both keep the base's media-type family (OCI, or Docker v2,
whose configs and layers have their own types), and a new index of that family lists
every platform.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tarfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgap.errors import ChecksumMismatchError, FileSystemError, ServerResponseError
from airgap.files import fsync_folder, temporary_name
from airgap.oci.layout import Layout
from airgap.oci.media import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    sha256_digest,
)
from airgap.trust.digests import Digests, Hasher

BLOCK = 512
CHUNK = 1 << 20
#: Package zips are compressed already: the fastest level saves as much as any other.
COMPRESSION_LEVEL = 1
# A gzip member header: deflate, no flags, mtime 0, no extra flags, OS unknown. Written
# here rather than by zlib, whose OS byte depends on how it was built.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
#: The name the layer is written under until its digest is known (a temporary name).
LAYER_NAME = "layer"
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"


@dataclass(frozen=True)
class Family:
    """The media types of one image format: OCI, or Docker's v2 schema 2."""

    name: str
    index: str
    manifest: str
    config: str
    layer: str  # gzip-compressed


OCI = Family("OCI", OCI_INDEX, OCI_MANIFEST, "application/vnd.oci.image.config.v1+json",
             "application/vnd.oci.image.layer.v1.tar+gzip")
DOCKER = Family("Docker v2", DOCKER_LIST, DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip")


def family_of(manifest_media_type: str) -> Family:
    """The family of a platform manifest's media type."""
    for family in (OCI, DOCKER):
        if manifest_media_type == family.manifest:
            return family
    raise ServerResponseError(f"{manifest_media_type!r} is not an image manifest type airgap "
                              "can compose on")


@dataclass(frozen=True)
class LayerFile:
    """One file of the layer: its path in the image, and the verified file it copies."""

    name: str  # relative, e.g. packages/package-registry/nginx-2.0.0.zip
    source: Path
    size: int
    sha512: str


@dataclass(frozen=True)
class Layer:
    """A layer blob as written: its descriptor, diff ID and the blob's own digests."""

    descriptor: Descriptor
    diff_id: str
    path: Path
    digests: Digests
    reused: bool = False  # kept from an earlier run rather than written now


def parent_directories(names: Sequence[str]) -> list[str]:
    """Every folder above ``names``, parents first: a layer names each explicitly."""
    folders: set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    return sorted(folders)


def _header(name: str, size: int, directory: bool) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = 0 if directory else size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    try:
        return info.tobuf(format=tarfile.USTAR_FORMAT)
    except ValueError:
        raise ServerResponseError(f"{name}: too long a name for a layer member") from None


class _LayerWriter:
    """The tar stream, gzip-compressed as it goes, into ``out``, hashed both ways."""

    def __init__(self, out: Any, progress: Callable[[int], None] | None) -> None:
        self.out = out
        self.progress = progress
        self.diff = hashlib.sha256()
        self.blob = Hasher(sha256=True)
        self.compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.crc = 0
        self.length = 0
        self._emit(_GZIP_HEADER)

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob.update(data)
            self.out.write(data)

    def tar(self, data: bytes | memoryview) -> None:
        """Add uncompressed tar bytes."""
        self.diff.update(data)
        self.crc = zlib.crc32(data, self.crc)
        self.length += len(data)
        self._emit(self.compressor.compress(data))

    def file(self, item: LayerFile, buffer: bytearray) -> None:
        """Add one member, its bytes checked against what they were verified as."""
        self.tar(_header(item.name, item.size, directory=False))
        check = hashlib.sha512()
        view = memoryview(buffer)
        copied = 0
        with item.source.open("rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                copied += count
                if copied > item.size:
                    break
                check.update(view[:count])
                self.tar(view[:count])
                if self.progress is not None:
                    self.progress(count)
        if copied != item.size or check.hexdigest() != item.sha512:
            raise ChecksumMismatchError(f"{item.source}: changed since it was verified; run "
                                        "the fetch again")
        if item.size % BLOCK:
            self.tar(b"\0" * (BLOCK - item.size % BLOCK))

    def finish(self) -> None:
        self.tar(b"\0" * (2 * BLOCK))
        self._emit(self.compressor.flush())
        self._emit(struct.pack("<II", self.crc & 0xFFFFFFFF, self.length & 0xFFFFFFFF))


def write_layer(layout: Layout, files: Sequence[LayerFile], media_type: str,
                progress: Callable[[int], None] | None = None) -> Layer:
    """Write the deterministic layer of ``files`` into ``layout``'s blobs; ``progress``
    hears of every chunk of file data read."""
    ordered = sorted(files, key=lambda f: f.name)
    names = [f.name for f in ordered]
    if len(set(names)) != len(names):
        raise ServerResponseError("two files of the layer have the same name")
    layout.blobs.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(layout.blobs / LAYER_NAME)
    try:
        with temporary.open("xb") as out:
            writer = _LayerWriter(out, progress)
            for folder in parent_directories(names):
                writer.tar(_header(folder, 0, directory=True))
            buffer = bytearray(CHUNK)
            for item in ordered:
                writer.file(item, buffer)
            writer.finish()
            out.flush()
            os.fsync(out.fileno())
        digests = writer.blob.digests()
        target = layout.blobs / str(digests.sha256)
        temporary.replace(target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise FileSystemError.from_os_error(exc) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(layout.blobs)
    return Layer(Descriptor(media_type, f"sha256:{digests.sha256}", digests.size),
                 f"sha256:{writer.diff.hexdigest()}", target, digests)


def _json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def compose_config(base: Mapping[str, Any], diff_id: str, created_by: str) -> bytes:
    """The base's image config with the layer's diff ID and a history entry added."""
    rootfs = base.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise ServerResponseError("the base image's config has no rootfs.diff_ids")
    history = base.get("history")
    entry = {"created": "1970-01-01T00:00:00Z", "created_by": created_by,
             "comment": "airgap: verified packages"}
    return _json({**base, "rootfs": {**rootfs, "diff_ids": [*rootfs["diff_ids"], diff_id]},
                  "history": [*(history if isinstance(history, list) else []), entry]})


def compose_manifest(base: Mapping[str, Any], family: Family, config: Descriptor,
                     layer: Descriptor, base_name: str, base_digest: str) -> bytes:
    """The base's manifest with the new config and the layer appended. An OCI manifest
    also names its base (the image-spec's base annotations)."""
    layers = base.get("layers")
    old_config = base.get("config")
    if not isinstance(layers, list) or not isinstance(old_config, dict):
        raise ServerResponseError("the base image's manifest has no config or layers")
    document = {key: value for key, value in base.items() if key != "subject"}
    document["mediaType"] = family.manifest
    document["config"] = {**old_config, "mediaType": config.media_type,
                          "digest": config.digest, "size": config.size}
    document["layers"] = [*layers, {"mediaType": layer.media_type, "digest": layer.digest,
                                    "size": layer.size}]
    if family is OCI:
        annotations = base.get("annotations")
        document["annotations"] = {**(annotations if isinstance(annotations, dict) else {}),
                                   BASE_NAME: base_name, BASE_DIGEST: base_digest}
    return _json(document)


def compose_index(family: Family, manifests: Sequence[tuple[Descriptor, Mapping[str, Any]]]
                  ) -> bytes:
    """An index of ``family`` naming each (manifest, platform)."""
    return _json({"schemaVersion": 2, "mediaType": family.index, "manifests": [
        {"mediaType": d.media_type, "digest": d.digest, "size": d.size,
         "platform": dict(platform)} for d, platform in manifests]})


def store(layout: Layout, media_type: str, data: bytes) -> tuple[Descriptor, Path, Digests]:
    """Write a small blob; its descriptor, path and digests."""
    path, digests = layout.write_blob(data)
    return Descriptor(media_type, sha256_digest(data), len(data)), path, digests
