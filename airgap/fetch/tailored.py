"""A tailored package registry: the server image plus exactly the bundle's verified packages.

Once the base (Elastic's ``package-registry`` server image, or ``registry.base``) is in
``images/`` and every package is verified, one layer holding each zip and its ``.sig``
under the server's package path is appended to every platform of the base
(:mod:`airgap.oci.compose`), and ``images/index.json`` names the result. The base's own
index, manifests and configs stay in the bundle beside it, so that what the registry
served can still be checked. The image is an ordinary one: load, push and export it as
any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airgap import oci
from airgap.bundle import layout as bundle_layout
from airgap.bundle.description import Tailored
from airgap.errors import ServerResponseError
from airgap.fetch.image import ImageResult, PlatformImage
from airgap.fetch.packages import PackageResult
from airgap.manifest.plan import TailoredItem
from airgap.net.download import Fetched
from airgap.oci.compose import (
    LayerFile,
    compose_config,
    compose_index,
    compose_manifest,
    family_of,
    store,
    write_layer,
)
from airgap.reporter import Reporter

ATTESTATION = "unknown/unknown"


def layer_files(item: TailoredItem, packages: Sequence[PackageResult]) -> list[LayerFile]:
    """Each package zip and its signature, as the layer holds them."""
    prefix = item.package_path.strip("/")
    return [LayerFile(f"{prefix}/{fetched.dest.name}", fetched.dest, fetched.digests.size,
                      fetched.digests.sha512)
            for result in packages for fetched in (result.file, result.signature)]


def _platform(descriptor: oci.Descriptor, config: Mapping[str, Any]) -> dict[str, Any]:
    """The platform an index entry gives: the base index's, else the config's."""
    given = descriptor.raw.get("platform")
    if isinstance(given, dict):
        return dict(given)
    found = oci.Platform.from_config(config)
    return {"architecture": found.architecture, "os": found.os,
            **({"variant": found.variant} if found.variant else {})}


def compose_tailored(item: TailoredItem, base: ImageResult, packages: Sequence[PackageResult],
                     bundle: Path, reporter: Reporter) -> ImageResult:
    """Append the packages layer to every platform of ``base`` and name the result
    ``item.reference`` in ``bundle``'s image layout."""
    layout = oci.Layout(bundle / bundle_layout.IMAGES)
    families = {family_of(p.manifest.media_type) for p in base.platforms}
    if len(families) != 1:
        raise ServerResponseError(f"{base.source}: its platforms mix image formats "
                                  f"({', '.join(sorted(f.name for f in families))})")
    family = families.pop()
    files = layer_files(item, packages)
    key = f"compose {item.reference}"
    reporter.task_started(key, f"composing {item.reference}: {len(packages)} packages",
                          sum(f.size for f in files))
    try:
        layer = write_layer(layout, files, family.layer,
                            progress=lambda count: reporter.task_advanced(key, count))
    except BaseException:
        reporter.task_finished(key, "failed")
        raise
    reporter.task_finished(key, "done")

    written = [Fetched(layer.path, "", layer.digests, reused=False)]
    created_by = f"airgap: {len(packages)} verified packages in {item.package_path}"
    platforms: list[PlatformImage] = []
    entries: list[tuple[oci.Descriptor, dict[str, Any]]] = []
    for image in base.platforms:
        base_config = layout.read_json(image.config.digest)
        config, path, digests = store(layout, image.config.media_type,
                                      compose_config(base_config, layer.diff_id, created_by))
        written.append(Fetched(path, "", digests, reused=False))
        document = compose_manifest(layout.read_json(image.manifest.digest), family, config,
                                    layer.descriptor, str(item.base), image.manifest.digest)
        manifest, path, digests = store(layout, family.manifest, document)
        written.append(Fetched(path, "", digests, reused=False))
        platforms.append(PlatformImage(image.platform, manifest, config,
                                       (*image.layers, layer.descriptor)))
        entries.append((manifest, _platform(image.manifest, base_config)))
    index, path, digests = store(layout, family.index, compose_index(family, entries))
    written.append(Fetched(path, "", digests, reused=False))
    layout.write_index([{"mediaType": index.media_type, "digest": index.digest,
                         "size": index.size,
                         "annotations": {oci.REF_NAME: item.reference.tag,
                                         oci.CONTAINERD_NAME: str(item.reference)}}])

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
        packages=tuple(sorted(bundle_layout.relative(bundle, p.file.dest) for p in packages)))
    return ImageResult(item.reference, base.source, base.upstream_digest,
                       base.upstream_media_type, index, tuple(platforms),
                       (*base.files, *written), base.left_out, record, tuple(notes))
