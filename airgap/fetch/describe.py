"""What a fetch writes about its bundle: the items of bundle.json, ``keys/``, and the
description itself, from the results of the three phases."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from pathlib import Path

from airgap import __version__
from airgap.bundle import layout
from airgap.bundle.description import (
    BundleDescription,
    Image,
    Item,
    Key,
    ManifestRecord,
    PlatformImage,
    Resolved,
    Verification,
)
from airgap.fetch.artifacts import ArtifactResult
from airgap.fetch.image import ImageResult
from airgap.fetch.packages import PackageResult
from airgap.files import atomic_write
from airgap.manifest.plan import Plan
from airgap.net.download import Fetched
from airgap.oci.media import INDEX_TYPES
from airgap.trust.digests import hash_file
from airgap.trust.gpg import TrustedKey


def _item(root: Path, fetched: Fetched, kind: str, source: str | None,
          verification: Verification) -> Item:
    return Item(layout.relative(root, fetched.dest), kind, fetched.digests.size,
                fetched.digests.sha512, source, verification)


def _image_items(root: Path, image: ImageResult) -> list[Item]:
    kinds = {image.stored.digest: "image-index" if image.stored.media_type in INDEX_TYPES
             else "image-manifest"}
    for platform in image.platforms:
        kinds[platform.manifest.digest] = "image-manifest"
        kinds[platform.config.digest] = "image-config"
        kinds.update({layer.digest: "image-layer" for layer in platform.layers})
    items = []
    for fetched in image.files:
        digest = f"sha256:{fetched.digests.sha256}"
        # A blob airgap composed (a tailored registry's) has no source URL.
        items.append(_item(root, fetched, kinds.get(digest, "image-blob"), fetched.url or None,
                           Verification(sha256="matches the blob's digest")))
    for name in ("oci-layout", "index.json"):
        digests = hash_file(root / layout.IMAGES / name)
        items.append(Item(f"{layout.IMAGES}/{name}", "oci-layout", digests.size,
                          digests.sha512))
    return items


def describe_files(root: Path, image: ImageResult, artifacts: Sequence[ArtifactResult],
                   packages: Sequence[PackageResult], keys: Iterable[TrustedKey]
                   ) -> list[Item]:
    """Every file of the bundle as bundle.json lists it, sorted by path; writes ``keys/``."""
    items = _image_items(root, image)
    for a in artifacts:
        file_path = layout.relative(root, a.file.dest)
        items.append(_item(root, a.file, "artifact", a.file.url, Verification(
            product=a.item.product, platform=f"{a.item.os}/{a.item.arch}",
            format=a.item.format, checksum=layout.relative(root, a.checksum.dest),
            signature=layout.relative(root, a.signature.dest), signer=a.signer.fingerprint)))
        items.append(_item(root, a.checksum, "artifact-checksum", a.checksum.url,
                           Verification(checksum_of=file_path)))
        items.append(_item(root, a.signature, "artifact-signature", a.signature.url,
                           Verification(signature_of=file_path, signer=a.signer.fingerprint)))
    for p in packages:
        file_path = layout.relative(root, p.file.dest)
        items.append(_item(root, p.file, "package", p.file.url, Verification(
            package=p.package.name, version=p.package.version,
            signature=layout.relative(root, p.signature.dest), signer=p.signer.fingerprint)))
        items.append(_item(root, p.signature, "package-signature", p.signature.url,
                           Verification(signature_of=file_path, signer=p.signer.fingerprint)))
    keys_dir = root / layout.KEYS
    keys_dir.mkdir(exist_ok=True)
    for key in keys:
        path = keys_dir / f"{key.fingerprint}.asc"
        atomic_write(path, key.armored)
        digests = hash_file(path)
        items.append(Item(f"{layout.KEYS}/{path.name}", "key", digests.size, digests.sha512,
                          verification=Verification(fingerprint=key.fingerprint)))
    return sorted(items, key=lambda i: i.path)


def description(plan: Plan, image: ImageResult, artifacts: Sequence[ArtifactResult],
                packages: Sequence[PackageResult], keys: Sequence[TrustedKey],
                items: Sequence[Item]) -> BundleDescription:
    """The bundle.json of a fetch of ``plan``."""
    manifest = plan.manifest
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    platforms = manifest.platforms
    return BundleDescription(
        tool_version=__version__,
        created=created.replace("+00:00", "Z"),
        manifest=ManifestRecord(manifest.source, manifest.document, Resolved(
            stack_version=manifest.stack_version, os=platforms.os, arch=platforms.arch,
            formats=platforms.formats, image=str(image.reference),
            packages={p.package.name: p.package.version for p in packages},
            products=tuple(sorted({a.item.product for a in artifacts})))),
        image=Image(
            reference=str(image.reference), source=image.source,
            upstream_digest=image.upstream_digest,
            upstream_media_type=image.upstream_media_type, digest=image.stored.digest,
            media_type=image.stored.media_type, layout=layout.IMAGES,
            platforms={p.platform: PlatformImage(p.manifest.digest, p.config.digest,
                                                 tuple(layer.digest for layer in p.layers))
                       for p in image.platforms},
            tailored=image.tailored),
        keys=tuple(Key(k.fingerprint, k.uids, k.source, f"{layout.KEYS}/{k.fingerprint}.asc",
                       k.is_elastic) for k in keys),
        notes=(*plan.notes, *image.notes),
        items=tuple(items),
    )
