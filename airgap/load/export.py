"""``airgap export-image``: one platform of the bundle's image as a tar for ``docker load``,
for a machine without airgap.

The bytes leave the bundle, so the bundle is verified first, as by ``airgap load``: the
image must be vouched for from outside (SHA512SUMS.asc by a ``trust_keys`` key) unless
``skip_verify``. The tar is written through a temporary name: a refused or failed export
leaves no tar behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from airgap import oci
from airgap.bundle.layout import IMAGES
from airgap.bundle.verify import BundleRefused, VerifyReport, VerifySettings, verify_bundle
from airgap.errors import UsageError, setting
from airgap.files import atomic_output, remove_dead_leftovers
from airgap.oci.dockertar import archive_stream
from airgap.reporter import Reporter


@dataclass(frozen=True)
class ExportSettings:
    """What ``airgap export-image`` was asked to do."""

    bundle: Path
    output: Path
    platform: str | None = None
    tags: tuple[str, ...] = ()
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
    report = None
    if settings.skip_verify:
        reporter.warning(f"{setting('skip_verify')}: the bundle is NOT being checked; "
                         "whatever its image is now is what gets written")
    else:
        report = verify_bundle(VerifySettings(settings.bundle, settings.trust_keys,
                                              settings.trust_signers,
                                              scope=frozenset({IMAGES})), reporter)
        if not report.ok:
            raise BundleRefused(report, "no image was written")
    result = export_image(settings.bundle, settings.platform, settings.output, settings.tags)
    return ExportResult(result.path, result.platform, result.reference, result.size, report)


def _check_options(settings: ExportSettings) -> None:
    for tag in settings.tags:
        oci.docker_tag(tag)
    if settings.platform is not None:
        try:
            oci.Platform.parse(settings.platform)
        except ValueError as exc:
            raise UsageError(f"{setting('platform')}: {exc}") from None


def export_image(bundle: Path, platform: str | None, output: Path,
                 extra_tags: Sequence[str] = ()) -> ExportResult:
    """Write ``output`` (atomically) for one platform of the bundle's image, unverified."""
    extra_tags = [oci.docker_tag(t) for t in extra_tags]
    layout = oci.Layout(bundle / IMAGES)
    selection = oci.select_platform(layout, platform)
    remove_dead_leftovers(output.parent, name=output.name)  # exports a kill -9 cut short
    size = 0
    with atomic_output(output) as out:
        for piece in archive_stream(layout, selection, extra_tags):
            out.write(piece)
            size += len(piece)
    return ExportResult(output, str(selection.platform), selection.reference, size)
