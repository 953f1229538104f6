"""``airgap fetch``: the whole plan into one verified, self-describing bundle.

The image, the artifacts and the packages are fetched (each phase in parallel); then
``keys/``, ``bundle.json`` and ``SHA512SUMS`` are written, last, so that a bundle that
has them is complete. A re-run reuses every file that still verifies and fetches only
what is missing or new; files an earlier run listed that the manifest no longer wants
are removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgap.bundle import layout
from airgap.bundle.description import Item
from airgap.bundle.lock import BundleLock
from airgap.bundle.sums import format_sums
from airgap.errors import AirgapError, BundleError, raise_collected
from airgap.fetch.artifacts import ArtifactResult, fetch_artifacts
from airgap.fetch.describe import describe_files, description
from airgap.fetch.image import ImageResult, fetch_image
from airgap.fetch.packages import PackageResult, fetch_packages
from airgap.fetch.tailored import compose_tailored
from airgap.files import atomic_write
from airgap.manifest.model import load_manifest
from airgap.manifest.plan import Plan, make_plan
from airgap.net.download import Downloader
from airgap.net.transport import NetworkSettings, make_client
from airgap.reporter import Reporter
from airgap.threads import SidePool
from airgap.trust.digests import hash_file
from airgap.trust.gpg import TrustedKey, Verifier
from airgap.trust.signing import OperatorKey


@dataclass(frozen=True)
class FetchSettings:
    """What ``airgap fetch`` was asked to do."""

    manifest: Path
    bundle: Path
    jobs: int = 8
    ca_cert: Path | None = None
    sign_with: str | None = None
    gnupg_home: Path | None = None


@dataclass(frozen=True)
class FetchResult:
    """A finished bundle at ``path``."""

    path: Path
    plan: Plan
    image: ImageResult
    artifacts: tuple[ArtifactResult, ...]
    packages: tuple[PackageResult, ...]
    items: tuple[Item, ...]
    keys: tuple[TrustedKey, ...]
    signed: bool
    removed: tuple[str, ...]

    @property
    def total_size(self) -> int:
        return sum(i.size for i in self.items)


def fetch(settings: FetchSettings, reporter: Reporter) -> FetchResult:
    """Fetch everything ``settings.manifest`` plans into ``settings.bundle``."""
    manifest = load_manifest(settings.manifest)
    plan = make_plan(manifest)
    # The command line adds to the manifest's CA (a proxy's, say), never replaces it.
    cas = dict.fromkeys(p for p in (manifest.sources.ca_cert, settings.ca_cert) if p)
    network = NetworkSettings(ca_certs=tuple(cas), jobs=settings.jobs)
    root = settings.bundle
    layout.check_output_folder(root)
    operator = OperatorKey(settings.sign_with, settings.gnupg_home) if settings.sign_with \
        else None
    if operator is not None:
        operator.check()  # a missing key or passphrase, before hours of downloads
    with BundleLock(root), make_client(network) as client, \
            Verifier(manifest.trust_keys) as verifier:
        for name in (layout.SUMS, layout.SUMS_SIGNATURE, layout.DESCRIPTION):
            (root / name).unlink(missing_ok=True)  # incomplete until the end says otherwise
        downloader = Downloader(client, network, reporter)
        # The image, the binaries and the packages come from three different servers:
        # fetch them at the same time, each with its own --jobs transfers.
        with SidePool("airgap-phase", workers=3, on_failure=downloader.cancel) as phases:
            image_job = phases.submit(fetch_image, plan.image, root, downloader)
            artifacts_job = phases.submit(fetch_artifacts, plan.artifacts, root, downloader,
                                          verifier)
            packages_job = phases.submit(fetch_packages, plan.packages,
                                         manifest.stack_version, manifest.sources.epr, root,
                                         downloader, verifier)
        image, artifacts, packages = _results(image_job, artifacts_job, packages_job)
        if plan.tailored is not None:  # the base image plus the verified packages
            image = compose_tailored(plan.tailored, image, packages, root, reporter)
        keys = tuple(verifier.keys.values())
        items = describe_files(root, image, artifacts, packages, keys)
        removed = _tidy(root, layout.stray_files(root, (i.path for i in items)))
        description(plan, image, artifacts, packages, keys, items).write(root)
        sums = [(i.path, i.sha512) for i in items]
        sums.append((layout.DESCRIPTION, hash_file(root / layout.DESCRIPTION).sha512))
        text = format_sums(sums)
        if operator is not None:
            # Before SHA512SUMS exists: a bundle that has it is complete, signature included.
            operator.sign_to(text.encode(), root / layout.SUMS_SIGNATURE)
        atomic_write(root / layout.SUMS, text)
    return FetchResult(root, plan, image, tuple(artifacts), tuple(packages), tuple(items), keys,
                       settings.sign_with is not None, tuple(sorted(removed)))


def _results(image_job: Future[ImageResult], artifacts_job: Future[list[ArtifactResult]],
             packages_job: Future[list[PackageResult]]
             ) -> tuple[ImageResult, list[ArtifactResult], list[PackageResult]]:
    """The three phases' results, or the error to report: a phase that failed unexpectedly
    (a full disk, say) stops the others, which then end interrupted, so the cause comes
    before any interruption; the errors of the phases together otherwise."""
    jobs: list[Future[Any]] = [image_job, artifacts_job, packages_job]
    failures = [e for e in (job.exception() for job in jobs) if e is not None]
    for failure in sorted(failures, key=lambda e: isinstance(e, KeyboardInterrupt)):
        if not isinstance(failure, AirgapError):
            raise failure
    raise_collected([e for e in failures if isinstance(e, AirgapError)],
                    "the fetch did not complete")
    return image_job.result(), artifacts_job.result(), packages_job.result()


def _tidy(root: Path, stray: Iterable[str]) -> list[str]:
    """Remove ``stray`` files, and the folders they leave empty."""
    removed = []
    for path in stray:
        target = root / path
        try:
            target.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise BundleError(f"{target}: cannot remove this file the bundle no longer "
                              f"lists: {exc.strerror}") from None
        removed.append(path)
        for parent in target.parents:
            if parent == root or any(parent.iterdir()):
                break
            parent.rmdir()
    return removed
