"""The OCI image layout on disk: ``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``.

The bundle keeps its images as one such layout, holding every platform of each with each
blob stored once; ``index.json`` names each image (``io.containerd.image.name``).
:func:`image_platforms` finds one image in it, :func:`select_platform` one platform's
manifest of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgap.errors import (
    BundleError,
    ChecksumMismatchError,
    DamagedBundleError,
    ServerResponseError,
    UsageError,
    setting,
)
from airgap.files import atomic_write, read_regular
from airgap.oci.media import (
    CONTAINERD_NAME,
    INDEX_TYPES,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    REF_NAME,
    Descriptor,
    ImageManifest,
    digest_hex,
    index_entries,
    load_json,
    parse_image_manifest,
)
from airgap.oci.platform import Platform
from airgap.platforms import host_platform
from airgap.trust.digests import Digests


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
            atomic_write(path, data)
        return path, digests

    def write_index(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Write ``oci-layout`` and ``index.json`` naming ``entries`` (descriptors)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for name, document in (("oci-layout", {"imageLayoutVersion": "1.0.0"}),
                               ("index.json", {"schemaVersion": 2, "mediaType": OCI_INDEX,
                                               "manifests": list(entries)})):
            atomic_write(self.root / name, json.dumps(document, indent=2) + "\n")

    def read_index(self) -> list[Descriptor]:
        """The descriptors ``index.json`` names (:class:`FileNotFoundError` without one)."""
        path = self.root / "index.json"
        data = _read_small(path)
        with _damaged():
            return index_entries(load_json(data, str(path), DamagedBundleError), str(path))

    def read_json(self, digest: str) -> dict[str, Any]:
        """A small JSON blob (manifest, index, config) of this layout."""
        path = self.blob(digest)
        try:
            data = _read_small(path)
        except FileNotFoundError:
            raise BundleError(f"blob {digest} is missing from {self.root}",
                              details=["run airgap verify to see what else is wrong"]) from None
        if hashlib.sha256(data).hexdigest() != digest_hex(digest):
            raise ChecksumMismatchError(f"{path}: its content does not match its digest "
                                        f"{digest}", details=["run airgap verify"])
        return load_json(data, str(path), DamagedBundleError)


def _read_small(path: Path) -> bytes:
    """A layout document: a regular file of at most :data:`MAX_MANIFEST_SIZE` bytes."""
    try:
        return read_regular(path, MAX_MANIFEST_SIZE)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise DamagedBundleError(f"{path}: {exc.strerror or exc}",
                                 details=["run airgap verify"]) from None


@contextlib.contextmanager
def _damaged() -> Iterator[None]:
    """A layout document without the shape its type gives it: the bundle is damaged."""
    try:
        yield
    except ServerResponseError as exc:
        raise DamagedBundleError(exc.message, details=["run airgap verify"]) from None


@dataclass(frozen=True)
class PlatformSelection:
    """The manifest of one platform of a layout's image, and the names it goes by."""

    platform: Platform
    manifest: Descriptor
    image: ImageManifest
    reference: str
    tag: str


def named_images(layout: Layout) -> dict[str, Descriptor]:
    """Each image ``index.json`` names, by its full reference, in the index's order."""
    try:
        entries = layout.read_index()
    except FileNotFoundError:
        raise BundleError(f"{layout.root} holds no image layout (no index.json)") from None
    named: dict[str, Descriptor] = {}
    for entry in entries:
        name = str(entry.raw.get("annotations", {}).get(CONTAINERD_NAME, ""))
        if name in named:
            raise BundleError(f"{layout.root}/index.json names {name or 'an image'} twice")
        named[name] = entry
    return named


def image_platforms(layout: Layout, reference: str | None = None
                    ) -> tuple[Descriptor, list[Descriptor]]:
    """The top descriptor of the image ``reference`` names (None: the layout's only one)
    and the platform manifests under it."""
    named = named_images(layout)
    if reference is not None:
        if reference not in named:
            raise UsageError(f"the bundle has no image {reference}; it has "
                             f"{', '.join(named) or 'none'}",
                             details=[f"choose one with {setting('images')}"])
        top = named[reference]
    elif len(named) == 1:
        top = next(iter(named.values()))
    else:
        raise UsageError(f"the bundle holds {len(named)} images ({', '.join(named)}): name "
                         f"one with {setting('images')}")
    if top.media_type in INDEX_TYPES:
        with _damaged():
            return top, index_entries(layout.read_json(top.digest),
                                      str(layout.blob(top.digest)))
    return top, [top]


def select_platform(layout: Layout, wanted: str | None, reference: str | None = None
                    ) -> PlatformSelection:
    """The platform ``wanted`` (default: this machine's) of the image ``reference``
    names (None: the layout's only one)."""
    top, manifests = image_platforms(layout, reference)
    annotations = top.raw.get("annotations", {})
    name = str(annotations.get(CONTAINERD_NAME, ""))
    tag = str(annotations.get(REF_NAME, ""))
    try:
        target = Platform.parse(wanted or host_platform())
    except ValueError as exc:
        raise UsageError(f"{setting('platform')}: {exc}") from None
    available = []
    for descriptor in manifests:
        with _damaged():
            image = parse_image_manifest(layout.read_json(descriptor.digest),
                                         str(layout.blob(descriptor.digest)))
        found = Platform.from_config(layout.read_json(image.config.digest))
        available.append(str(found))
        if target.matches(found):
            return PlatformSelection(found, descriptor, image, name, tag)
    what = name or "the bundle's image"
    raise UsageError(f"{what} has no {target} platform; it has {', '.join(available)}",
                     details=[f"choose one with {setting('platform')}"] if wanted is None
                     else [])
