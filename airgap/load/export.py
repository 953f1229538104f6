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
from airgap.bundle.lock import refuse_while_written
from airgap.files import atomic_output
from airgap.load.select import select_images
from airgap.oci.dockertar import archive_size, archive_stream
from airgap.reporter import NullReporter, Reporter


@dataclass(frozen=True)
class ExportResult:
    """An image tar written by ``airgap export-image``."""

    path: Path
    platform: str
    reference: str
    size: int


def export_image(bundle: Path, platform: str | None, output: Path,
                 extra_tags: Sequence[str] = (), image: str | None = None,
                 reporter: Reporter | None = None) -> ExportResult:
    """Write ``output`` (atomically) for one platform of the bundle's image ``image``
    names (by default the package registry's)."""
    reporter = reporter or NullReporter()
    extra_tags = [oci.docker_tag(t) for t in extra_tags]
    refuse_while_written(bundle)
    layout = oci.Layout(bundle / IMAGES)
    if image is not None:
        reference: str | None = select_images(read_description(bundle), [image])[0]
    elif len(oci.named_images(layout)) == 1:
        reference = None  # the only one: no need for bundle.json
    else:
        reference = read_description(bundle).image.reference
    selection = oci.select_platform(layout, platform, reference)
    total = archive_size(selection, extra_tags)
    key = str(output)
    reporter.task_started(key, f"{output} ({selection.reference}, {selection.platform})",
                          total)
    size = 0
    try:
        with atomic_output(output) as out:
            for piece in archive_stream(layout, selection, extra_tags):
                out.write(piece)
                size += len(piece)
                reporter.task_advanced(key, len(piece))
    except BaseException:
        reporter.task_finished(key, "failed")
        raise
    reporter.task_finished(key, "done", "every blob matched its digest")
    return ExportResult(output, str(selection.platform), selection.reference, size)
