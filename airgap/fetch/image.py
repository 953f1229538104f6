"""The package registry image: pulled without a Docker daemon into ``BUNDLE/images/``.

One OCI image layout holds every requested platform; a blob the platforms share (the
packages layer) is stored once. When every platform of the registry's index is wanted,
the index is kept byte for byte, so its digest is the one the registry publishes;
otherwise a new index lists the wanted platforms' manifests, which keep their digests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgap import oci
from airgap.bundle.description import Tailored
from airgap.bundle.layout import IMAGES
from airgap.errors import NotFoundError, ServerResponseError, UsageError
from airgap.manifest.plan import ImageItem
from airgap.net.credentials import find_credentials
from airgap.net.download import Downloader, Fetched
from airgap.net.urls import host_port
from airgap.oci.registry import RegistryClient
from airgap.trust.digests import Digests


@dataclass(frozen=True)
class PlatformImage:
    """One platform of the image: its manifest and the blobs it names."""

    platform: str
    manifest: oci.Descriptor
    config: oci.Descriptor
    layers: tuple[oci.Descriptor, ...]


@dataclass(frozen=True)
class ImageResult:
    """The image as stored: what the tag pointed at upstream, and every file written."""

    reference: oci.ImageReference
    source: str
    upstream_digest: str
    upstream_media_type: str
    stored: oci.Descriptor
    platforms: tuple[PlatformImage, ...]
    files: tuple[Fetched, ...]
    #: The platforms of the upstream index that were not taken (``unknown/unknown`` for
    #: an attestation manifest).
    left_out: tuple[str, ...] = ()
    #: What a tailored registry added to its base (see airgap.fetch.tailored), and what
    #: its composition noted for bundle.json.
    tailored: Tailored | None = None
    notes: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return sum(f.digests.size for f in self.files)


def fetch_image(item: ImageItem, bundle: Path, downloader: Downloader) -> ImageResult:
    """Pull ``item`` for its platforms into ``bundle/images`` and return what was stored."""
    reference = item.reference
    client = RegistryClient(downloader, item.registry_url, reference.repository,
                            find_credentials(host_port(item.registry_url)))
    layout = oci.Layout(bundle / IMAGES)
    source = f"{item.registry_url}/{reference.repository}:{reference.tag}"
    client.ping()
    try:
        data, media_type, digest = client.manifest(reference.tag)
    except NotFoundError:
        raise NotFoundError(f"{source}: no such image tag",
                            details=["check registry.flavor, registry.variant and registry.tag "
                                     "against the tags the registry publishes"]) from None
    written: list[Fetched] = []
    left_out: list[str] = []
    wanted = [oci.Platform.parse(p) for p in item.platforms]
    if media_type in oci.INDEX_TYPES:
        platforms, stored = _from_index(client, layout, data, media_type, wanted, source,
                                        reference.tag, written, left_out)
    else:
        platforms, stored = _from_single(client, layout, data, media_type, digest, wanted,
                                         source, written)

    # Each blob once, however many platforms share it.
    blobs: dict[str, tuple[oci.Descriptor, str]] = {}
    for image in platforms:
        for number, layer in enumerate(image.layers, 1):
            label = f"{image.platform} layer {number}/{len(image.layers)}"
            if layer.digest in blobs:
                label = f"layer {layer.digest[7:19]} (shared)"
            blobs[layer.digest] = (layer, label)
        blobs.setdefault(image.config.digest, (image.config, f"{image.platform} config"))
    downloads = [client.blob_download(d, layout.blob(d.digest), label)
                 for d, label in blobs.values()]
    written.extend(downloader.fetch_all(downloads))

    annotations = {oci.REF_NAME: reference.tag, oci.CONTAINERD_NAME: str(reference)}
    layout.write_index([{**_descriptor_json(stored), "annotations": annotations}])
    files = {f.dest: f for f in written}
    return ImageResult(reference, source, digest, media_type, stored, tuple(platforms),
                       tuple(files.values()), tuple(left_out))


def _descriptor_json(descriptor: oci.Descriptor) -> dict[str, Any]:
    return {"mediaType": descriptor.media_type, "digest": descriptor.digest,
            "size": descriptor.size}


def _store(layout: oci.Layout, data: bytes, url: str, written: list[Fetched]) -> Digests:
    path, digests = layout.write_blob(data)
    written.append(Fetched(path, url, digests, reused=False))
    return digests


def _from_index(client: RegistryClient, layout: oci.Layout, data: bytes, media_type: str,
                wanted: list[oci.Platform], source: str, tag: str, written: list[Fetched],
                left_out: list[str]) -> tuple[list[PlatformImage], oci.Descriptor]:
    document = oci.load_json(data, source)
    entries = oci.index_entries(document, source)
    chosen: list[tuple[oci.Platform, oci.Descriptor]] = []
    for platform in wanted:
        match = next((e for e in entries if e.platform is not None
                      and e.media_type in oci.MANIFEST_TYPES and platform.matches(e.platform)),
                     None)
        if match is None:
            offered = ", ".join(str(e.platform) for e in entries if e.platform) or "none"
            raise NotFoundError(f"{source} has no {platform} image (it has: {offered})",
                                details=["remove that architecture from platforms.arch"])
        chosen.append((platform, match))

    platforms = [_platform_image(client, layout, str(p), d, source, written) for p, d in chosen]
    picked = {d.digest for _, d in chosen}
    every = {e.digest for e in entries}
    left_out.extend(str(e.platform or "no platform") for e in entries if e.digest not in picked)
    if picked == every:
        body = data  # all of it: keep the registry's own index and its digest
    else:
        kept = [dict(e.raw) for e in entries if e.digest in picked]
        body = json.dumps({**document, "manifests": kept}, indent=2).encode()
    digests = _store(layout, body, client.url("manifests", tag), written)
    stored = oci.Descriptor(media_type, f"sha256:{digests.sha256}", digests.size)
    return platforms, stored


def _from_single(client: RegistryClient, layout: oci.Layout, data: bytes, media_type: str,
                 digest: str, wanted: list[oci.Platform], source: str, written: list[Fetched]
                 ) -> tuple[list[PlatformImage], oci.Descriptor]:
    descriptor = oci.Descriptor(media_type, digest, len(data))
    manifest = oci.parse_image_manifest(oci.load_json(data, source), source)
    config = _config_platform(client, layout, manifest.config, source, written)
    unmatched = [str(p) for p in wanted if not p.matches(config)]
    if unmatched:
        raise UsageError(f"{source} is a single-platform image for {config}, not for "
                         f"{', '.join(unmatched)}",
                         details=["set platforms.arch to match it, or use a multi-platform "
                                  "tag"])
    _store(layout, data, client.url("manifests", digest), written)
    image = PlatformImage(str(config), descriptor, manifest.config, manifest.layers)
    return [image], descriptor


def _config_platform(client: RegistryClient, layout: oci.Layout, config: oci.Descriptor,
                     source: str, written: list[Fetched]) -> oci.Platform:
    if config.size > oci.MAX_MANIFEST_SIZE:
        raise ServerResponseError(f"{source}: image config of {config.size} bytes is too large")
    fetched = client.downloader.fetch(client.blob_download(config, layout.blob(config.digest),
                                                           "config"))
    written.append(fetched)
    return oci.Platform.from_config(layout.read_json(config.digest))


def _platform_image(client: RegistryClient, layout: oci.Layout, platform: str,
                    descriptor: oci.Descriptor, source: str, written: list[Fetched]
                    ) -> PlatformImage:
    data, media_type, digest = client.manifest(descriptor.digest)
    if digest != descriptor.digest or len(data) != descriptor.size:
        raise ServerResponseError(f"{source}: the {platform} manifest does not match its "
                                  "descriptor in the index")
    if media_type != descriptor.media_type:
        raise ServerResponseError(f"{source}: the {platform} manifest is {media_type}, the "
                                  f"index says {descriptor.media_type}")
    manifest = oci.parse_image_manifest(oci.load_json(data, source), f"{source} ({platform})")
    _store(layout, data, client.url("manifests", digest), written)
    return PlatformImage(platform, descriptor, manifest.config, manifest.layers)
