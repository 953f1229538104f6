"""The images: pulled without a Docker daemon into ``BUNDLE/images/``.

One OCI image layout holds the package registry image and the others a manifest names
(``images``), every requested platform of each; a blob that platforms or images share
(the packages layer, a base layer) is stored once. When every platform of an image's
index is wanted, the index is kept byte for byte, so its digest is the one the registry
publishes; otherwise a new index lists the wanted platforms' manifests, which keep their
digests.

:func:`resolve_image` asks only for the small documents (the index, each platform's
manifest, a config when the tag names one platform), before anything large is
downloaded; :func:`fetch_image` then stores them and downloads the blobs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from airgap import oci
from airgap.bundle.description import Tailored
from airgap.bundle.layout import IMAGES
from airgap.bundle.staging import Staging
from airgap.errors import NotFoundError, ServerResponseError, UsageError
from airgap.fetch.since import Since
from airgap.manifest.plan import ImageItem
from airgap.net.credentials import find_credentials
from airgap.net.download import Downloader, Fetched
from airgap.net.urls import host_port
from airgap.oci.registry import RegistryClient
from airgap.trust.digests import Digests

PHASE = "image"


@dataclass(frozen=True)
class PlatformImage:
    """One platform of the image: its manifest and the blobs it names."""

    platform: str
    manifest: oci.Descriptor
    config: oci.Descriptor
    layers: tuple[oci.Descriptor, ...]


@dataclass(frozen=True)
class ResolvedImage:
    """What the tag names, learnt with small requests only: the documents to store (the
    index or manifest, each platform's manifest) and every platform's blobs."""

    item: ImageItem
    client: RegistryClient
    source: str
    upstream_digest: str
    upstream_media_type: str
    stored: oci.Descriptor
    documents: tuple[tuple[str, bytes], ...]  # (the URL it came from, its bytes)
    platforms: tuple[PlatformImage, ...]
    #: The platforms of the upstream index that were not taken (``unknown/unknown`` for
    #: an attestation manifest).
    left_out: tuple[str, ...] = ()

    def blobs(self) -> list[tuple[oci.Descriptor, str]]:
        """Each blob once, however many platforms share it, with what it is."""
        found: dict[str, tuple[oci.Descriptor, str]] = {}
        for image in self.platforms:
            for number, layer in enumerate(image.layers, 1):
                what = f"{image.platform} layer {number}/{len(image.layers)}"
                if layer.digest in found:
                    what = "a layer the platforms share"
                found[layer.digest] = (layer, what)
            found.setdefault(image.config.digest, (image.config, f"{image.platform} config"))
        return list(found.values())

    @property
    def size(self) -> int:
        """The bytes the image takes in a bundle."""
        return sum(len(data) for _, data in self.documents) + \
            sum(d.size for d, _ in self.blobs())


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


def image_files(*images: ResolvedImage) -> dict[str, int]:
    """Every file the images put in a bundle's layout, each once however many images
    and platforms share it: the documents (index, manifests) and the blobs, by path."""
    found = {f"{IMAGES}/blobs/sha256/{hashlib.sha256(data).hexdigest()}": len(data)
             for image in images for _, data in image.documents}
    found.update((f"{IMAGES}/blobs/sha256/{d.hex}", d.size)
                 for image in images for d, _ in image.blobs())
    return found


def resolve_image(item: ImageItem, downloader: Downloader, *, registry: bool = True,
                  base: bool = False) -> ResolvedImage:
    """Find ``item``'s manifests for its platforms, and so every blob it needs;
    ``registry`` when it is the package registry image (which the registry settings
    name), ``base`` when that is the base of a tailored registry."""
    reference = item.reference
    client = RegistryClient(downloader, item.registry_url, reference.repository,
                            find_credentials(host_port(item.registry_url)))
    source = f"{item.registry_url}/{reference.repository}:{reference.tag}"
    client.ping()
    try:
        data, media_type, digest = client.manifest(reference.tag)
    except NotFoundError:
        hint = ("check registry.base, the tailored registry's server image, or, when it "
                "is not given, registry.variant, which picks that image's tag"
                if base else "check registry.flavor, registry.variant and registry.tag "
                "against the tags the registry publishes") if registry else \
            "check the image's name and tag in `images`"
        raise NotFoundError(f"{source}: no such image tag", details=[hint]) from None
    wanted = [oci.Platform.parse(p) for p in item.platforms]
    documents: list[tuple[str, bytes]] = []
    left_out: list[str] = []
    if media_type in oci.INDEX_TYPES:
        platforms, stored = _from_index(client, data, media_type, wanted, source,
                                        reference.tag, documents, left_out)
    else:
        platforms, stored = _from_single(client, data, media_type, digest, wanted, source,
                                         documents)
    return ResolvedImage(item, client, source, digest, media_type, stored, tuple(documents),
                         tuple(platforms), tuple(left_out))


def fetch_image(resolved: ResolvedImage, staging: Staging,
                downloader: Downloader) -> ImageResult:
    """:func:`fetch_images` of one image."""
    return fetch_images([resolved], staging, downloader)[0]


def fetch_images(images: Sequence[ResolvedImage], staging: Staging,
                 downloader: Downloader, since: Since | None = None,
                 read_configs: bool = False) -> list[ImageResult]:
    """Store the images' documents and download their blobs, each once however many
    platforms and images share it, each kept from the bundle when its copy there still
    matches its digest (with ``since``, not downloaded when the base of a delta holds
    it, but for the configs when ``read_configs``); ``index.json`` names them all, the
    first (the package registry) by its tag as well, the others by their full
    reference."""
    layout = oci.Layout(staging.path(IMAGES))
    live = oci.Layout(staging.live(IMAGES))
    documents: list[list[Fetched]] = []
    blobs: dict[str, tuple[oci.Descriptor, str, RegistryClient]] = {}
    reporter = downloader.reporter
    stored: dict[str, Fetched] = {}
    for image in images:
        written: list[Fetched] = []
        documents.append(written)
        for url, data in image.documents:
            digests = _digests(data)
            sha256 = hashlib.sha256(data).hexdigest()  # a document is a few KiB at most
            if sha256 in stored:  # a document two images share: written once
                written.append(stored[sha256])
                continue
            kind = _document_kind(image, data, len(images) > 1)
            label = f"{IMAGES}/blobs/sha256/{sha256} ({kind})"
            kept = live.blob(f"sha256:{sha256}")
            if kept.is_file() and kept.read_bytes() == data:
                written.append(Fetched(kept, url, digests, reused=True))
                reporter.task_kept(label, label, digests.size, phase=PHASE,
                                   detail="sha256 ok")
            else:
                # Asked for before the downloads (the check of the sources): written now,
                # and counted with the phase like every other file it brings.
                reporter.task_started(label, label, digests.size, phase=PHASE)
                path, digests = layout.write_blob(data)
                reporter.task_advanced(label, digests.size)
                reporter.task_finished(label, "fetched", "sha256 ok")
                written.append(Fetched(path, url, digests, reused=False))
            stored[sha256] = written[-1]
        for descriptor, what in image.blobs():
            if len(images) > 1:
                what = f"{image.item.reference.repository} {what}"
            blobs.setdefault(descriptor.digest, (descriptor, what, image.client))
    downloads = [client.blob_download(
        descriptor, layout.blob(descriptor.digest),
        f"{IMAGES}/blobs/sha256/{descriptor.hex} ({what})", existing=live.blob(descriptor.digest),
        phase=PHASE) for descriptor, what, client in blobs.values()]
    # A tailored registry's composition reads the configs (a few KB each): fetched then.
    configs = {image.config.digest for resolved in images for image in resolved.platforms} \
        if read_configs else set()
    held = [since.blob(d) if since is not None and digest not in configs else None
            for d, digest in zip(downloads, blobs, strict=True)]
    fetched = iter(downloader.fetch_all([d for d, h in zip(downloads, held, strict=True)
                                         if h is None]))
    by_digest = {digest: h if h is not None else next(fetched)
                 for digest, h in zip(blobs, held, strict=True)}
    results = []
    for number, image in enumerate(images):
        files = {f.dest: f for f in documents[number]}
        for descriptor, _ in image.blobs():
            blob = by_digest[descriptor.digest]
            files.setdefault(blob.dest, blob)
        results.append(ImageResult(image.item.reference, image.source, image.upstream_digest,
                                   image.upstream_media_type, image.stored, image.platforms,
                                   tuple(files.values()), image.left_out))
    write_image_index(staging, results)
    return results


def _document_kind(image: ResolvedImage, data: bytes, several: bool) -> str:
    """What one of an image's documents is: its index, or one platform's manifest."""
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    platform = next((p.platform for p in image.platforms if p.manifest.digest == digest),
                    None)
    what = f"{platform} manifest" if platform is not None else "index"
    return f"{image.item.reference.repository} {what}" if several else what


def write_image_index(staging: Staging, images: Sequence[ImageResult]) -> None:
    """Write the staged ``images/index.json``: every image, the first (the package
    registry) by its tag as well, the others by their full reference."""
    entries = []
    for number, image in enumerate(images):
        reference, stored = image.reference, image.stored
        annotations = {oci.REF_NAME: reference.tag if number == 0 else str(reference),
                       oci.CONTAINERD_NAME: str(reference)}
        entries.append({"mediaType": stored.media_type, "digest": stored.digest,
                        "size": stored.size, "annotations": annotations})
    oci.Layout(staging.path(IMAGES)).write_index(entries)


def _digests(data: bytes) -> Digests:
    return Digests(len(data), hashlib.sha512(data).hexdigest(), hashlib.sha256(data).hexdigest())


def _from_index(client: RegistryClient, data: bytes, media_type: str,
                wanted: list[oci.Platform], source: str, tag: str,
                documents: list[tuple[str, bytes]], left_out: list[str]
                ) -> tuple[list[PlatformImage], oci.Descriptor]:
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

    platforms = [_platform_image(client, str(p), d, source, documents) for p, d in chosen]
    picked = {d.digest for _, d in chosen}
    every = {e.digest for e in entries}
    left_out.extend(str(e.platform or "no platform") for e in entries if e.digest not in picked)
    if picked == every:
        body = data  # all of it: keep the registry's own index and its digest
    else:
        kept = [dict(e.raw) for e in entries if e.digest in picked]
        body = json.dumps({**document, "manifests": kept}, indent=2).encode()
    documents.append((client.url("manifests", tag), body))
    digests = _digests(body)
    return platforms, oci.Descriptor(media_type, f"sha256:{digests.sha256}", digests.size)


def _from_single(client: RegistryClient, data: bytes, media_type: str, digest: str,
                 wanted: list[oci.Platform], source: str,
                 documents: list[tuple[str, bytes]]
                 ) -> tuple[list[PlatformImage], oci.Descriptor]:
    descriptor = oci.Descriptor(media_type, digest, len(data))
    manifest = oci.parse_image_manifest(oci.load_json(data, source), source)
    config = _config_platform(client, manifest.config, source)
    unmatched = [str(p) for p in wanted if not p.matches(config)]
    if unmatched:
        raise UsageError(f"{source} is a single-platform image for {config}, not for "
                         f"{', '.join(unmatched)}",
                         details=["set platforms.arch to match it, or use a multi-platform "
                                  "tag"])
    documents.append((client.url("manifests", digest), data))
    image = PlatformImage(str(config), descriptor, manifest.config, manifest.layers)
    return [image], descriptor


def _config_platform(client: RegistryClient, config: oci.Descriptor,
                     source: str) -> oci.Platform:
    """The platform a single-platform image's config declares (a small blob, read whole
    and checked against its digest; the blob itself is downloaded with the others)."""
    if config.size > oci.MAX_MANIFEST_SIZE:
        raise ServerResponseError(f"{source}: image config of {config.size} bytes is too large")
    answer = client.downloader.fetch_small(client.url("blobs", config.digest),
                                           auth=client.auth, max_size=oci.MAX_MANIFEST_SIZE)
    if oci.sha256_digest(answer.content) != config.digest:
        raise ServerResponseError(f"{source}: the image config does not match its digest "
                                  f"{config.digest}")
    return oci.Platform.from_config(oci.load_json(answer.content, f"{source} config"))


def _platform_image(client: RegistryClient, platform: str, descriptor: oci.Descriptor,
                    source: str, documents: list[tuple[str, bytes]]) -> PlatformImage:
    data, media_type, digest = client.manifest(descriptor.digest)
    if digest != descriptor.digest or len(data) != descriptor.size:
        raise ServerResponseError(f"{source}: the {platform} manifest does not match its "
                                  "descriptor in the index")
    if media_type != descriptor.media_type:
        raise ServerResponseError(f"{source}: the {platform} manifest is {media_type}, the "
                                  f"index says {descriptor.media_type}")
    manifest = oci.parse_image_manifest(oci.load_json(data, source), f"{source} ({platform})")
    documents.append((client.url("manifests", digest), data))
    return PlatformImage(platform, descriptor, manifest.config, manifest.layers)
