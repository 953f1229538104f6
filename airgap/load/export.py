"""``airgap export-image``: one platform of one of the bundle's images (the package
registry's unless told otherwise) as a tar for ``docker load``, for a machine without
airgap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from airgap import oci
from airgap.bundle.description import read_description
from airgap.bundle.layout import IMAGES
from airgap.files import atomic_output
from airgap.load.select import select_images
from airgap.oci.dockertar import archive_stream


@dataclass(frozen=True)
class ExportResult:
    """An image tar written by ``airgap export-image``."""

    path: Path
    platform: str
    reference: str
    size: int


def export_image(bundle: Path, platform: str | None, output: Path,
                 extra_tags: Sequence[str] = (), image: str | None = None) -> ExportResult:
    """Write ``output`` (atomically) for one platform of the bundle's image ``image``
    names (by default the package registry's)."""
    extra_tags = [oci.docker_tag(t) for t in extra_tags]
    layout = oci.Layout(bundle / IMAGES)
    if image is not None:
        reference: str | None = select_images(read_description(bundle), [image])[0]
    elif len(oci.named_images(layout)) == 1:
        reference = None  # the only one: no need for bundle.json
    else:
        reference = read_description(bundle).image.reference
    selection = oci.select_platform(layout, platform, reference)
    size = 0
    with atomic_output(output) as out:
        for piece in archive_stream(layout, selection, extra_tags):
            out.write(piece)
            size += len(piece)
    return ExportResult(output, str(selection.platform), selection.reference, size)
