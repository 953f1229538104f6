"""``airgap export-image``: one platform of the bundle's image as a tar for ``docker load``,
for a machine without airgap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from airgap import oci
from airgap.bundle.layout import IMAGES
from airgap.files import atomic_output
from airgap.oci.dockertar import archive_stream


@dataclass(frozen=True)
class ExportResult:
    """An image tar written by ``airgap export-image``."""

    path: Path
    platform: str
    reference: str
    size: int


def export_image(bundle: Path, platform: str | None, output: Path,
                 extra_tags: Sequence[str] = ()) -> ExportResult:
    """Write ``output`` (atomically) for one platform of the bundle's image."""
    extra_tags = [oci.docker_tag(t) for t in extra_tags]
    layout = oci.Layout(bundle / IMAGES)
    selection = oci.select_platform(layout, platform)
    size = 0
    with atomic_output(output) as out:
        for piece in archive_stream(layout, selection, extra_tags):
            out.write(piece)
            size += len(piece)
    return ExportResult(output, str(selection.platform), selection.reference, size)
