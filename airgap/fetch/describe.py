"""What a fetch writes about its bundle: the items of bundle.json, ``keys/``, and the
description itself, from the results of the phases."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airgap import __version__
from airgap.bundle import layout
from airgap.bundle.description import (
    BundleDescription,
    DefendManifest,
    Image,
    Item,
    Key,
    ManifestRecord,
    PlatformImage,
    Resolved,
    Verification,
    utc_timestamp,
)
from airgap.bundle.staging import Staging
from airgap.fetch.artifacts import ArtifactResult
from airgap.fetch.defend import DefendResult
from airgap.fetch.image import ImageResult
from airgap.fetch.packages import PackageResult
from airgap.files import atomic_write
from airgap.manifest.plan import Plan
from airgap.net.download import Fetched
from airgap.oci.media import INDEX_TYPES
from airgap.trust.digests import hash_file
from airgap.trust.gpg import TrustedKey


def _item(staging: Staging, fetched: Fetched, kind: str, source: str | None,
          verification: Verification) -> Item:
    return Item(staging.relative(fetched.dest), kind, fetched.digests.size,
                fetched.digests.sha512, source, verification)


@dataclass(frozen=True)
class Extras:
    """What a fetch got besides the registry image, the artifacts and the packages."""

    images: Sequence[ImageResult] = ()
    defend: Sequence[DefendResult] = ()
    tools: Sequence[Fetched] = field(default_factory=list)


def _image_items(staging: Staging, images: Sequence[ImageResult]) -> list[Item]:
    kinds: dict[str, str] = {}
    for image in images:
        kinds[image.stored.digest] = "image-index" if image.stored.media_type in INDEX_TYPES \
            else "image-manifest"
        for platform in image.platforms:
            kinds[platform.manifest.digest] = "image-manifest"
            kinds[platform.config.digest] = "image-config"
            kinds.update({layer.digest: "image-layer" for layer in platform.layers})
    items = []
    files = {f.dest: f for image in images for f in image.files}  # a shared blob once
    for fetched in files.values():
        digest = f"sha256:{fetched.digests.sha256}"
        # A blob airgap composed (a tailored registry's) has no source URL.
        items.append(_item(staging, fetched, kinds.get(digest, "image-blob"),
                           fetched.url or None,
                           Verification(sha256="matches the blob's digest")))
    for name in ("oci-layout", "index.json"):
        digests = hash_file(staging.path(f"{layout.IMAGES}/{name}"))
        items.append(Item(f"{layout.IMAGES}/{name}", "oci-layout", digests.size,
                          digests.sha512))
    return items


def _extra_items(staging: Staging, extras: Extras) -> list[Item]:
    items = []
    seen: set[Path] = set()
    for result in extras.defend:
        manifest = staging.relative(result.manifest.dest)
        items.append(_item(staging, result.manifest, "defend-manifest", result.manifest.url,
                           Verification(version=result.item.endpoint_version)))
        for _, fetched in result.artifacts:
            if fetched.dest not in seen:
                seen.add(fetched.dest)
                items.append(_item(staging, fetched, "defend-artifact", fetched.url, Verification(
                    sha256="matches the manifest's encoded_sha256 and decoded_sha256",
                    listed_in=manifest)))
    items += [_item(staging, tool, "tool", None, Verification()) for tool in extras.tools]
    return items


def describe_files(staging: Staging, image: ImageResult,
                   artifacts: Sequence[ArtifactResult], packages: Sequence[PackageResult],
                   keys: Iterable[TrustedKey], extras: Extras | None = None) -> list[Item]:
    """Every file of the new bundle as bundle.json lists it, sorted by path; writes
    ``keys/`` into staging."""
    extras = extras or Extras()
    items = _image_items(staging, [image, *extras.images])
    items += _extra_items(staging, extras)
    for a in artifacts:
        file_path = staging.relative(a.file.dest)
        items.append(_item(staging, a.file, "artifact", a.file.url, Verification(
            product=a.item.product, platform=f"{a.item.os}/{a.item.arch}",
            format=a.item.format, checksum=staging.relative(a.checksum.dest),
            signature=staging.relative(a.signature.dest), signer=a.signer.fingerprint)))
        items.append(_item(staging, a.checksum, "artifact-checksum", a.checksum.url,
                           Verification(checksum_of=file_path)))
        items.append(_item(staging, a.signature, "artifact-signature", a.signature.url,
                           Verification(signature_of=file_path, signer=a.signer.fingerprint)))
    for p in packages:
        file_path = staging.relative(p.file.dest)
        items.append(_item(staging, p.file, "package", p.file.url, Verification(
            package=p.package.name, version=p.package.version,
            signature=staging.relative(p.signature.dest), signer=p.signer.fingerprint)))
        items.append(_item(staging, p.signature, "package-signature", p.signature.url,
                           Verification(signature_of=file_path, signer=p.signer.fingerprint)))
    keys_dir = staging.path(layout.KEYS)
    keys_dir.mkdir(parents=True, exist_ok=True)
    for key in keys:
        path = keys_dir / f"{key.fingerprint}.asc"
        atomic_write(path, key.armored)
        digests = hash_file(path)
        items.append(Item(f"{layout.KEYS}/{path.name}", "key", digests.size, digests.sha512,
                          verification=Verification(fingerprint=key.fingerprint)))
    return sorted(items, key=lambda i: i.path)


def _image(image: ImageResult) -> Image:
    return Image(
        reference=str(image.reference), source=image.source,
        upstream_digest=image.upstream_digest,
        upstream_media_type=image.upstream_media_type, digest=image.stored.digest,
        media_type=image.stored.media_type, layout=layout.IMAGES,
        platforms={p.platform: PlatformImage(p.manifest.digest, p.config.digest,
                                             tuple(layer.digest for layer in p.layers))
                   for p in image.platforms},
        tailored=image.tailored)


def _defend(result: DefendResult) -> DefendManifest:
    return DefendManifest(result.item.endpoint_version, result.item.bundle_path,
                          result.manifest.url, result.document.manifest_version,
                          result.document.schema_version, result.fetched,
                          len(result.document.entries))


def description(plan: Plan, image: ImageResult, artifacts: Sequence[ArtifactResult],
                packages: Sequence[PackageResult], keys: Sequence[TrustedKey],
                items: Sequence[Item], extras: Extras | None = None) -> BundleDescription:
    """The bundle.json of a fetch of ``plan``."""
    extras = extras or Extras()
    manifest = plan.manifest
    platforms = manifest.platforms
    return BundleDescription(
        tool_version=__version__,
        created=utc_timestamp(),
        manifest=ManifestRecord(manifest.source, manifest.document, Resolved(
            stack_version=manifest.stack_version, os=platforms.os, arch=platforms.arch,
            formats=platforms.formats, image=str(image.reference),
            packages={p.package.name: p.package.version for p in packages},
            products=tuple(sorted({a.item.product for a in artifacts})))),
        image=_image(image),
        keys=tuple(Key(k.fingerprint, k.uids, k.source, f"{layout.KEYS}/{k.fingerprint}.asc",
                       k.is_elastic) for k in keys),
        notes=(*plan.notes, *image.notes),
        items=tuple(items),
        images=tuple(_image(i) for i in extras.images),
        defend=tuple(_defend(d) for d in extras.defend),
    )
