"""OCI image formats: media types, descriptors, platforms, and the image layout on disk.

The bundle keeps its image as one OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/<hex>``), holding every platform with each blob stored once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap.digests import Digests
from airgap.errors import BundleError, ChecksumMismatchError, ServerResponseError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
ACCEPT_MANIFESTS = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
MAX_MANIFEST_SIZE = 4 << 20

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})\Z")


def digest_hex(digest: str, where: str = "digest") -> str:
    """The hex part of a ``sha256:`` digest, refusing anything else (it names a file)."""
    match = _DIGEST.match(digest)
    if match is None:
        raise ServerResponseError(f"{where}: {digest!r} is not a sha256 digest")
    return match.group(1)


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Platform:
    """An OCI platform; ``arm64`` with no variant is the same as ``arm64/v8``."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/amd64`` or ``linux/arm64/v8``."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"{text!r} is not a platform like linux/amd64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, other: Platform) -> bool:
        """Whether an image built for ``other`` runs as this platform."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        if self.architecture == "arm64":
            return (self.variant or "v8") == (other.variant or "v8")
        return self.variant is None or self.variant == other.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor; ``raw`` is the JSON object exactly as the registry wrote it."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def hex(self) -> str:
        return digest_hex(self.digest)


def parse_descriptor(obj: Any, where: str) -> Descriptor:
    """A descriptor from JSON, checked: digest, size and media type must be sane."""
    if not isinstance(obj, dict):
        raise ServerResponseError(f"{where}: a descriptor must be a JSON object")
    digest, size, media_type = obj.get("digest"), obj.get("size"), obj.get("mediaType")
    digest_hex(str(digest), where)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ServerResponseError(f"{where}: size {size!r} is not a byte count")
    if not isinstance(media_type, str):
        raise ServerResponseError(f"{where}: mediaType is missing")
    platform = None
    if isinstance(obj.get("platform"), dict):
        p = obj["platform"]
        platform = Platform(str(p.get("os", "")), str(p.get("architecture", "")),
                            str(p["variant"]) if p.get("variant") else None)
    return Descriptor(media_type, str(digest), size, platform, obj)


def load_json(data: bytes, where: str) -> dict[str, Any]:
    """A JSON object from a registry or layout, or a clear error."""
    try:
        document = json.loads(data)
    except ValueError:
        raise ServerResponseError(f"{where}: not valid JSON") from None
    if not isinstance(document, dict):
        raise ServerResponseError(f"{where}: expected a JSON object")
    return document


def index_entries(document: Mapping[str, Any], where: str) -> list[Descriptor]:
    """The ``manifests`` of an index or manifest list."""
    entries = document.get("manifests")
    if not isinstance(entries, list):
        raise ServerResponseError(f"{where}: an index needs a `manifests` list")
    return [parse_descriptor(e, f"{where} manifests[{i}]") for i, e in enumerate(entries)]


@dataclass(frozen=True)
class ImageManifest:
    """One platform's manifest: its config and layers."""

    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)


def parse_image_manifest(document: Mapping[str, Any], where: str) -> ImageManifest:
    """Config and layers of an image manifest (OCI or Docker v2 schema 2)."""
    if document.get("schemaVersion") != 2:
        raise ServerResponseError(f"{where}: only schemaVersion 2 manifests are supported")
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise ServerResponseError(f"{where}: a manifest needs a `layers` list")
    return ImageManifest(parse_descriptor(document.get("config"), f"{where} config"),
                         tuple(parse_descriptor(layer, f"{where} layers[{i}]")
                               for i, layer in enumerate(layers)))


class Layout:
    """An OCI image layout directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"

    def blob(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives."""
        return self.blobs / digest_hex(digest)

    def write_blob(self, data: bytes) -> tuple[Path, Digests]:
        """Store a small blob (a manifest, an index) atomically; return its path and hashes."""
        digests = Digests(len(data), hashlib.sha512(data).hexdigest(),
                          hashlib.sha256(data).hexdigest())
        path = self.blobs / str(digests.sha256)
        self.blobs.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            part = path.with_name(path.name + ".part")
            part.write_bytes(data)
            part.replace(path)
        return path, digests

    def write_index(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Write ``oci-layout`` and ``index.json`` naming ``entries`` (descriptors)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for name, document in (("oci-layout", {"imageLayoutVersion": "1.0.0"}),
                               ("index.json", {"schemaVersion": 2, "mediaType": OCI_INDEX,
                                               "manifests": list(entries)})):
            path = self.root / name
            part = path.with_name(name + ".part")
            part.write_text(json.dumps(document, indent=2) + "\n")
            part.replace(path)

    def read_index(self) -> list[Descriptor]:
        """The descriptors ``index.json`` names."""
        path = self.root / "index.json"
        return index_entries(load_json(path.read_bytes(), str(path)), str(path))

    def read_json(self, digest: str) -> dict[str, Any]:
        """A small JSON blob (manifest, index, config) of this layout."""
        path = self.blob(digest)
        try:
            if path.stat().st_size > MAX_MANIFEST_SIZE:
                raise ServerResponseError(f"{path}: too large for a manifest")
            data = path.read_bytes()
        except FileNotFoundError:
            raise BundleError(f"blob {digest} is missing from {self.root}",
                              details=["run airgap verify to see what else is wrong"]) from None
        if hashlib.sha256(data).hexdigest() != digest_hex(digest):
            raise ChecksumMismatchError(f"{path}: its content does not match its digest "
                                        f"{digest}", details=["run airgap verify"])
        return load_json(data, str(path))
