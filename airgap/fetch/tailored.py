"""A tailored package registry: the server image plus exactly the bundle's verified packages.

Once the base (Elastic's ``package-registry`` server image, or ``registry.base``) is
fetched and every package is verified, one layer holding each zip and its ``.sig`` under
the server's package path is appended to every platform of the base
(:mod:`airgap.oci.compose`), and ``images/index.json`` names the result. Like every
phase, it writes into the bundle's staging folder only, and keeps what the bundle
already has: a layer of exactly the same verified packages (the same names, sizes and
SHA-512s that bundle.json recorded for it) is kept rather than composed again, once its
blob still matches its digest. The base's own index, manifests and configs stay in the
bundle beside it, so that what the registry served can still be checked. The image is
an ordinary one: load, push and export it as any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from airgap import oci
from airgap.bundle import layout as bundle_layout
from airgap.bundle.description import BundleDescription, Tailored, read_description
from airgap.bundle.staging import Staging
from airgap.errors import AirgapError, ServerResponseError
from airgap.fetch.image import ImageResult, PlatformImage, write_image_index
from airgap.fetch.packages import PackageResult
from airgap.files import remove_dead_leftovers
from airgap.manifest.plan import TailoredItem
from airgap.net.download import Fetched
from airgap.oci.compose import (
    BLOCK,
    LAYER_NAME,
    Family,
    Layer,
    LayerFile,
    compose_config,
    compose_index,
    compose_manifest,
    family_of,
    parent_directories,
    write_layer,
)
from airgap.reporter import Reporter
from airgap.trust.digests import hash_file

PHASE = "compose"
ATTESTATION = "unknown/unknown"


def layer_files(item: TailoredItem, packages: Sequence[PackageResult]) -> list[LayerFile]:
    """Each package zip and its signature, as the layer holds them."""
    prefix = item.package_path.strip("/")
    return [LayerFile(f"{prefix}/{fetched.dest.name}", fetched.dest, fetched.digests.size,
                      fetched.digests.sha512)
            for result in packages for fetched in (result.file, result.signature)]


def estimated_size(package_path: str, names: Iterable[str], sizes: Iterable[int]) -> int:
    """About the bytes the packages layer of files ``names`` (bundle paths) of ``sizes``
    takes: the tar (headers, padding, folders, its end), plus what gzip adds to data
    already compressed (a little under 0.1 %), rounded up."""
    members = [f"{package_path.strip('/')}/{PurePosixPath(n).name}" for n in names]
    tar = sum(BLOCK + -(-size // BLOCK) * BLOCK for size in sizes) + \
        BLOCK * (len(parent_directories(members)) + 2)
    return tar + tar // 500 + (64 << 10)


def _family(base: ImageResult) -> Family:
    families = {family_of(p.manifest.media_type) for p in base.platforms}
    if len(families) != 1:
        raise ServerResponseError(f"{base.source}: its platforms mix image formats "
                                  f"({', '.join(sorted(f.name for f in families))})")
    return families.pop()


def _platform(descriptor: oci.Descriptor, config: Mapping[str, Any]) -> dict[str, Any]:
    """The platform an index entry gives: the base index's, else the config's."""
    given = descriptor.raw.get("platform")
    if isinstance(given, dict):
        return dict(given)
    found = oci.Platform.from_config(config)
    return {"architecture": found.architecture, "os": found.os,
            **({"variant": found.variant} if found.variant else {})}


def _read(base: ImageResult, digest: str) -> dict[str, Any]:
    """One of the base's documents, from where the image phase left it (staged, or kept
    in the bundle), checked against its digest."""
    for fetched in base.files:
        if f"sha256:{fetched.digests.sha256}" == digest:
            return oci.Layout(fetched.dest.parents[2]).read_json(digest)
    raise ServerResponseError(f"{base.source}: {digest} was not fetched")


def _store(staging: Staging, data: bytes) -> Fetched:
    """A composed document into staging, or the bundle's identical copy kept."""
    live = oci.Layout(staging.live(bundle_layout.IMAGES))
    digest = oci.sha256_digest(data)
    kept = live.blob(digest)
    if kept.is_file() and not kept.is_symlink() and kept.read_bytes() == data:
        return Fetched(kept, "", hash_file(kept, sha256=True), reused=True)
    path, digests = oci.Layout(staging.path(bundle_layout.IMAGES)).write_blob(data)
    return Fetched(path, "", digests, reused=False)


def _descriptor(media_type: str, fetched: Fetched) -> oci.Descriptor:
    return oci.Descriptor(media_type, f"sha256:{fetched.digests.sha256}", fetched.digests.size)


def compose_tailored(item: TailoredItem, images: Sequence[ImageResult],
                     packages: Sequence[PackageResult], staging: Staging,
                     reporter: Reporter) -> list[ImageResult]:
    """Append the packages layer to every platform of the first of ``images`` (the
    base), name the result ``item.reference`` in the staged image layout beside the
    other images, and return the images with the tailored one first."""
    base, *others = images
    family = _family(base)
    files = layer_files(item, packages)
    reporter.phase_started(PHASE, f"{item.reference}: {len(packages)} packages onto "
                                  f"{item.base}", total=sum(f.size for f in files))
    try:
        layer = _kept_layer(staging, item, family, files, reporter) or \
            _new_layer(staging, item, family, files, reporter)
        image = _compose(item, base, family, layer, packages, staging, reporter)
        write_image_index(staging, [image, *others])
    except BaseException:
        reporter.phase_finished(PHASE, "failed")
        raise
    reporter.phase_finished(PHASE, "kept" if layer.reused else "done")
    return [image, *others]


def _new_layer(staging: Staging, item: TailoredItem, family: Family,
               files: Sequence[LayerFile], reporter: Reporter) -> Layer:
    blobs = oci.Layout(staging.path(bundle_layout.IMAGES))
    remove_dead_leftovers(blobs.blobs, name=LAYER_NAME)  # what a killed compose left
    key = f"compose {item.reference}"
    reporter.task_started(key, f"packages layer of {item.reference} ({len(files)} files)",
                          sum(f.size for f in files), phase=PHASE)
    try:
        layer = write_layer(blobs, files, family.layer,
                            progress=lambda count: reporter.task_advanced(key, count))
    except BaseException:
        reporter.task_finished(key, "failed")
        raise
    reporter.task_finished(key, "done", f"composed: {layer.descriptor.digest[:19]}, diff ID "
                                        f"{layer.diff_id[:19]}")
    return layer


def _kept_layer(staging: Staging, item: TailoredItem, family: Family,
                files: Sequence[LayerFile], reporter: Reporter) -> Layer | None:
    """The bundle's layer, when bundle.json says it holds exactly ``files`` (the same
    names, sizes and SHA-512s) and its blob still matches its digest; else None."""
    old = _old_description(staging.root)
    tailored = old.image.tailored if old is not None else None
    if old is None or tailored is None or tailored.package_path != item.package_path \
            or old.image.media_type != family.index:
        return None
    items = old.items_by_path
    prefix = item.package_path.strip("/")
    had = []
    for path in tailored.packages:
        for file in (path, path + bundle_layout.PACKAGE_SIGNATURE):
            if file not in items:
                return None
            had.append((f"{prefix}/{PurePosixPath(file).name}", items[file].size,
                        items[file].sha512))
    if sorted(had) != sorted((f.name, f.size, f.sha512) for f in files):
        return None
    try:
        blob = oci.Layout(staging.live(bundle_layout.IMAGES)).blob(tailored.layer)
    except AirgapError:
        return None
    if not blob.is_file() or blob.is_symlink():
        return None
    digests = hash_file(blob, sha256=True)
    if f"sha256:{digests.sha256}" != tailored.layer:
        reporter.warning(f"{blob}: the packages layer from an earlier run does not match its "
                         "digest; composing it again")
        return None
    reporter.task_kept(f"compose {item.reference}", f"packages layer of {item.reference} "
                       f"({len(files)} files)", digests.size, phase=PHASE,
                       detail="the same verified packages")
    return Layer(oci.Descriptor(family.layer, tailored.layer, digests.size), tailored.diff_id,
                 blob, digests, reused=True)


def layer_in_bundle(staging: Staging, package_sizes: Mapping[str, int | None]) -> bool:
    """Whether the bundle's packages layer holds the package zips ``package_sizes`` names
    (by bundle path, with their sizes when known): the pre-flight then counts no room
    for a new one, since :func:`compose_tailored` will most likely keep it."""
    old = _old_description(staging.root)
    tailored = old.image.tailored if old is not None else None
    if old is None or tailored is None or set(tailored.packages) != set(package_sizes):
        return False
    items = old.items_by_path
    if any(size is not None and (path not in items or items[path].size != size)
           for path, size in package_sizes.items()):
        return False
    try:
        return oci.Layout(staging.live(bundle_layout.IMAGES)).blob(tailored.layer).is_file()
    except AirgapError:
        return False


def _old_description(root: Path) -> BundleDescription | None:
    """The complete bundle's description, if there is one that reads."""
    if not (root / bundle_layout.SUMS).is_file():
        return None
    try:
        return read_description(root)
    except AirgapError:
        return None


def _compose(item: TailoredItem, base: ImageResult, family: Family, layer: Layer,
             packages: Sequence[PackageResult], staging: Staging,
             reporter: Reporter) -> ImageResult:
    """The configs, manifests and index of the tailored image, over ``layer``."""
    written = [Fetched(layer.path, "", layer.digests, reused=layer.reused)]
    created_by = f"airgap: {len(packages)} verified packages in {item.package_path}"
    platforms: list[PlatformImage] = []
    entries: list[tuple[oci.Descriptor, dict[str, Any]]] = []
    for image in base.platforms:
        base_config = _read(base, image.config.digest)
        stored = _store(staging, compose_config(base_config, layer.diff_id, created_by))
        config = _descriptor(image.config.media_type, stored)
        written.append(stored)
        stored = _store(staging, compose_manifest(
            _read(base, image.manifest.digest), family, config, layer.descriptor,
            str(item.base), image.manifest.digest))
        manifest = _descriptor(family.manifest, stored)
        written.append(stored)
        platforms.append(PlatformImage(image.platform, manifest, config,
                                       (*image.layers, layer.descriptor)))
        entries.append((manifest, _platform(image.manifest, base_config)))
    stored = _store(staging, compose_index(family, entries))
    index = _descriptor(family.index, stored)
    written.append(stored)

    notes = []
    attestations = base.left_out.count(ATTESTATION)
    if attestations:
        notes.append(f"{item.base}: the {attestations} attestation manifest(s) of its index "
                     f"(platform {ATTESTATION}) describe the base, not the tailored image, "
                     "and are left out")
    for note in notes:
        reporter.info(note)
    record = Tailored(
        base=str(item.base), layer=layer.descriptor.digest, diff_id=layer.diff_id,
        package_path=item.package_path,
        packages=tuple(sorted(staging.relative(p.file.dest) for p in packages)))
    return ImageResult(item.reference, base.source, base.upstream_digest,
                       base.upstream_media_type, index, tuple(platforms),
                       (*base.files, *written), base.left_out, record, tuple(notes))
