"""OCI and Docker v2 image documents: media types, digests, descriptors, manifests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airgap.documents import DocumentError, parse_json
from airgap.errors import AirgapError, ServerResponseError
from airgap.oci.platform import Platform

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
    platform = Platform.from_config(obj["platform"]) if isinstance(obj.get("platform"), dict) \
        else None
    return Descriptor(media_type, str(digest), size, platform, obj)


def load_json(data: bytes, where: str, error: type[AirgapError] = ServerResponseError
              ) -> dict[str, Any]:
    """A JSON object from a registry (or, with ``error`` a bundle's, from a layout) of at
    most :data:`MAX_MANIFEST_SIZE` bytes, nested no deeper than documents go, or ``error``
    naming ``where``."""
    try:
        document = parse_json(data, max_size=MAX_MANIFEST_SIZE)
    except DocumentError as exc:
        raise error(f"{where}: {exc}") from None
    if not isinstance(document, dict):
        raise error(f"{where}: expected a JSON object")
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
