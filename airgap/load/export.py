"""``airgap export-image``: one platform of one of the bundle's images (the package
registry's unless told otherwise) as a tar for ``docker load``, for a machine without
airgap.

The bytes leave the bundle, so the bundle is verified first, as by ``airgap load``: the
image must be vouched for from outside (SHA512SUMS.asc by a ``trust_keys`` key) unless
``skip_verify``; what can be refused without it (the image, the platform, where the tar
goes) is refused before it. The tar is written through a temporary name: a refused or failed export
leaves no tar behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from airgap import oci
from airgap.bundle.description import read_description
from airgap.bundle.layout import IMAGES
from airgap.bundle.lock import refuse_while_written
from airgap.bundle.verify import BundleRefused, VerifyReport, VerifySettings, verify_bundle
from airgap.errors import AirgapError, ManifestError, UsageError, setting
from airgap.files import atomic_output, remove_dead_leftovers
from airgap.load.destinations import check_output_file
from airgap.load.select import select_images
from airgap.oci.dockertar import archive_size, archive_stream
from airgap.reporter import NullReporter, Reporter


@dataclass(frozen=True)
class ExportSettings:
    """What ``airgap export-image`` was asked to do."""

    bundle: Path
    output: Path
    platform: str | None = None
    tags: tuple[str, ...] = ()
    #: Which of the bundle's images (None: the package registry's).
    image: str | None = None
    skip_verify: bool = False
    trust_keys: tuple[Path, ...] = ()
    trust_signers: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ExportResult:
    """An image tar written by ``airgap export-image``."""

    path: Path
    platform: str
    reference: str
    size: int
    verification: VerifyReport | None = None


def export(settings: ExportSettings, reporter: Reporter) -> ExportResult:
    """Verify the bundle (unless ``skip_verify``), then write the tar."""
    _check_options(settings)  # before minutes of hashing
    refuse_while_written(settings.bundle)
    check_output_file(settings.output, "output")
    _check_selection(settings)
    report = None
    if settings.skip_verify:
        reporter.warning(f"{setting('skip_verify')}: the bundle is NOT being checked; "
                         "whatever its image is now is what gets written")
    else:
        report = verify_bundle(VerifySettings(settings.bundle, settings.trust_keys,
                                              trust_signers=settings.trust_signers,
                                              scope=frozenset({IMAGES})), reporter)
        if not report.ok:
            raise BundleRefused(report, "no image was written")
        for said in report.medium_warnings:  # what a medium's system added: never read
            reporter.warning(said)
    result = export_image(settings.bundle, settings.platform, settings.output, settings.tags,
                          settings.image, reporter)
    return ExportResult(result.path, result.platform, result.reference, result.size, report)


def _check_options(settings: ExportSettings) -> None:
    for tag in settings.tags:
        oci.docker_tag(tag)
    if settings.platform is not None:
        try:
            oci.Platform.parse(settings.platform)
        except ValueError as exc:
            raise UsageError(f"{setting('platform')}: {exc}") from None


def _check_selection(settings: ExportSettings) -> None:
    """The image and platform asked for, looked up in the bundle before it is verified:
    one it does not hold is refused now. A bundle too damaged to say is left to the
    verification, which says what is wrong with it; the export selects again after it."""
    try:
        _selection(settings.bundle, settings.platform, settings.image)
    except ManifestError:
        return
    except UsageError:
        raise
    except (AirgapError, OSError, ValueError):
        return


def _selection(bundle: Path, platform: str | None, image: str | None
               ) -> tuple[oci.Layout, oci.PlatformSelection]:
    layout = oci.Layout(bundle / IMAGES)
    if image is not None:
        reference: str | None = select_images(read_description(bundle), [image])[0]
    elif len(oci.named_images(layout)) == 1:
        reference = None  # the only one: no need for bundle.json
    else:
        reference = read_description(bundle).image.reference
    return layout, oci.select_platform(layout, platform, reference)


def export_image(bundle: Path, platform: str | None, output: Path,
                 extra_tags: Sequence[str] = (), image: str | None = None,
                 reporter: Reporter | None = None) -> ExportResult:
    """Write ``output`` (atomically) for one platform of the bundle's image ``image``
    names (by default the package registry's), unverified."""
    reporter = reporter or NullReporter()
    extra_tags = [oci.docker_tag(t) for t in extra_tags]
    refuse_while_written(bundle)
    layout, selection = _selection(bundle, platform, image)
    remove_dead_leftovers(output.parent, name=output.name)  # exports a kill -9 cut short
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
