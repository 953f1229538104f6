"""``airgap fetch``: the whole plan into one verified, self-describing bundle.

First every source is asked (:mod:`airgap.fetch.preflight`): a typo, a missing file, an
untrusted certificate or a full disk is reported in seconds, before anything large is
downloaded. Then the images, the artifacts, the packages and Elastic Defend's artifacts
are fetched (each phase in parallel) into the bundle's staging folder, each file kept
from the bundle when its copy there still verifies, and airgap's own wheelhouse copied
when asked; a tailored registry's packages layer is composed onto its base image
(:mod:`airgap.fetch.tailored`); then ``keys/``, ``bundle.json`` and ``SHA512SUMS`` are
written, and one commit puts it all in place (:mod:`airgap.bundle.staging`). A bundle that was
complete stays complete whatever a run does; files the manifest no longer wants are
removed only by that commit. With ``since``, the bundle is a delta of that
earlier bundle (:mod:`airgap.fetch.since`, :mod:`airgap.bundle.delta`).
"""

from __future__ import annotations

import errno
import filecmp
import functools
import shutil
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap.bundle import layout
from airgap.bundle.delta import DeltaSummary, write_delta
from airgap.bundle.description import BundleDescription, Item, read_description
from airgap.bundle.lock import BundleLock
from airgap.bundle.staging import Staging, commit, recover
from airgap.bundle.sums import format_sums
from airgap.errors import AirgapError, FileSystemError, setting
from airgap.fetch import artifacts as artifacts_phase
from airgap.fetch import defend as defend_phase
from airgap.fetch import image as image_phase
from airgap.fetch import packages as packages_phase
from airgap.fetch.artifacts import ArtifactResult, fetch_artifacts
from airgap.fetch.defend import DefendResult, fetch_defend
from airgap.fetch.describe import Extras, describe_files, description
from airgap.fetch.image import ImageResult, fetch_images, image_files
from airgap.fetch.packages import PackageResult, fetch_packages
from airgap.fetch.preflight import (
    SourceCheck,
    check_sources,
    check_space,
    remaining_bytes,
    to_compose,
)
from airgap.fetch.since import Since, open_base
from airgap.fetch.tailored import compose_tailored
from airgap.fetch.tools import check_wheelhouse, copy_wheelhouse
from airgap.files import atomic_write, file_system
from airgap.manifest.model import load_manifest
from airgap.manifest.plan import Plan, make_plan
from airgap.net.download import Downloader, Fetched
from airgap.net.transport import NetworkSettings, make_client
from airgap.reporter import Reporter
from airgap.threads import SidePool, raise_failures
from airgap.trust.digests import hash_file
from airgap.trust.gpg import TrustedKey, Verifier
from airgap.trust.signing import OperatorKey
from airgap.units import human_size


@dataclass(frozen=True)
class FetchSettings:
    """What ``airgap fetch`` was asked to do."""

    manifest: Path
    bundle: Path
    jobs: int = 8
    ca_cert: Path | None = None
    sign_with: str | None = None
    gnupg_home: Path | None = None
    with_tool: Path | None = None  # a wheelhouse of airgap to carry in tools/
    passphrase_file: Path | None = None
    since: Path | None = None  # write a delta of this earlier bundle


@dataclass(frozen=True)
class FetchResult:
    """A finished bundle at ``path``; ``unchanged`` when it already held exactly this."""

    path: Path
    plan: Plan
    image: ImageResult
    artifacts: tuple[ArtifactResult, ...]
    packages: tuple[PackageResult, ...]
    items: tuple[Item, ...]
    keys: tuple[TrustedKey, ...]
    signed: bool
    removed: tuple[str, ...]
    unchanged: bool = False
    extras: Extras = field(default_factory=Extras)
    delta: DeltaSummary | None = None

    def _index(self) -> list[Path]:
        """The files that describe the others: bundle.json, SHA512SUMS, its signature."""
        names = (layout.DESCRIPTION, layout.SUMS, layout.SUMS_SIGNATURE)
        return [self.path / name for name in names if (self.path / name).is_file()]

    @property
    def file_count(self) -> int:
        """The files of the bundle: its items, and the index that lists them."""
        return len(self.items) + len(self._index())

    @property
    def total_size(self) -> int:
        """The bytes of the bundle: its items, and the index that lists them."""
        return sum(i.size for i in self.items) + sum(p.stat().st_size for p in self._index())

    def files(self) -> list[Fetched]:
        """Every file the phases gave."""
        extras = self.extras
        return [*self.image.files, *(f for i in extras.images for f in i.files),
                *(f for a in self.artifacts for f in (a.file, a.checksum, a.signature)),
                *(f for p in self.packages for f in (p.file, p.signature)),
                *(f for d in extras.defend for f in (d.manifest,
                                                     *(a for _, a in d.artifacts))),
                *extras.tools]

    def to_dict(self) -> dict[str, Any]:
        """What the fetch did, for ``--json``."""
        files = self.files()
        return {
            "bundle": str(self.path), "manifest": self.plan.manifest.source,
            "stack_version": self.plan.manifest.stack_version,
            "image": {"reference": str(self.image.reference),
                      "digest": self.image.stored.digest,
                      "platforms": [p.platform for p in self.image.platforms],
                      **({"tailored": self.image.tailored.to_dict()}
                         if self.image.tailored else {})},
            "files": self.file_count, "bytes": self.total_size,
            "fetched_bytes": sum(f.fetched_now for f in files),
            "resumed_bytes": sum(f.resumed for f in files if not f.reused),
            "kept_bytes": sum(f.digests.size for f in files if f.reused),
            "signed": self.signed, "unchanged": self.unchanged, "removed": list(self.removed),
            "artifacts": [a.item.bundle_path for a in self.artifacts],
            "packages": {p.package.name: p.package.version for p in self.packages},
            "images": [str(i.reference) for i in self.extras.images],
            "defend": {d.item.endpoint_version: d.document.manifest_version
                       for d in self.extras.defend},
            "tools": [f.dest.name for f in self.extras.tools],
            "delta": None if self.delta is None else {
                "base": self.delta.base, "target": self.delta.target,
                "carried_files": self.delta.carried_files,
                "carried_bytes": self.delta.carried_size},
        }


def fetch(settings: FetchSettings, reporter: Reporter) -> FetchResult:
    """Fetch everything ``settings.manifest`` plans into ``settings.bundle``."""
    manifest = load_manifest(settings.manifest)
    plan = make_plan(manifest)
    # The command line adds to the manifest's CA (a proxy's, say), never replaces it.
    cas = dict.fromkeys(p for p in (manifest.sources.ca_cert, settings.ca_cert) if p)
    network = NetworkSettings(ca_certs=tuple(cas), jobs=settings.jobs)
    root = settings.bundle
    layout.check_output_folder(root)
    base = open_base(settings.since, root) if settings.since else None
    operator = OperatorKey(settings.sign_with, settings.gnupg_home, settings.passphrase_file) \
        if settings.sign_with else None
    if operator is not None:
        operator.check()  # a missing key or passphrase, before hours of downloads
    if settings.with_tool is not None:
        check_wheelhouse(settings.with_tool)
    reporter.info(f"fetch {manifest.source} into {root}: {plan.summary()}")
    with BundleLock(root), make_client(network) as client, \
            Verifier(manifest.trust_keys) as verifier:
        if recover(root):
            reporter.warning(f"{root}: finished the commit of a fetch that was stopped "
                             "while it put its files in place")
        staging = Staging(root)
        downloader = Downloader(client, network, reporter)
        since = Since(base, verifier.keys, reporter) if base is not None else None
        reporter.phase_started("check", "asking every source before downloading")
        check = check_sources(plan, downloader)
        left = remaining_bytes(check, staging)
        if since is not None:
            left = max(0, left - since.likely_held(check.sizes()))
        composing = to_compose(check, staging) > 0
        reporter.phase_finished("check", f"{human_size(check.total)} in "
                                         f"{len(check.sizes())} files, {human_size(left)} "
                                         f"to download{' and compose' if composing else ''}")
        check_space(staging, left, composing=composing)
        try:
            images, artifacts, packages, defend = _fetch_phases(
                plan, check, staging, downloader, verifier, reporter, since)
            if plan.tailored is not None:  # the base image plus the verified packages
                images = compose_tailored(plan.tailored, images, packages, staging, reporter)
            tools = copy_wheelhouse(settings.with_tool, staging) if settings.with_tool \
                else []
        except OSError as exc:  # a full disk, most likely: say where and how much
            raise _with_space_left(FileSystemError.from_os_error(exc), check,
                                   staging) from exc
        except FileSystemError as exc:  # the packages layer's writer names its file
            full = _with_space_left(exc, check, staging)
            if full is exc:
                raise
            raise full from exc
        image = images[0]
        extras = Extras(images[1:], defend, tools)
        keys = tuple(verifier.keys.values())
        items = describe_files(staging, image, artifacts, packages, keys, extras)
        new = description(plan, image, artifacts, packages, keys, items, extras)
        if since is not None:
            delta, carried = write_delta(staging.folder, new, since.base,
                                         operator.sign if operator is not None else None)
            index = [layout.DESCRIPTION, layout.SUMS, layout.SUMS_SIGNATURE]
            drop = layout.stray_files(root, carried)
            commit(staging, [*carried, *index], drop)
            return FetchResult(root, plan, image, tuple(artifacts), tuple(packages),
                               tuple(items), keys, operator is not None, tuple(drop),
                               extras=extras, delta=delta)
        if _unchanged(root, new) and not _staged_anew(staging, items):
            _keep(staging, operator, root)
            return FetchResult(root, plan, image, tuple(artifacts), tuple(packages),
                               tuple(items), keys, _signed(root), (), unchanged=True,
                               extras=extras)
        new.write(staging.folder)
        sums = [(i.path, i.sha512) for i in items]
        sums.append((layout.DESCRIPTION, hash_file(staging.path(layout.DESCRIPTION)).sha512))
        text = format_sums(sums)
        if operator is not None:
            operator.sign_to(text.encode(), staging.path(layout.SUMS_SIGNATURE))
        elif (root / layout.SUMS_SIGNATURE).is_file():
            reporter.warning(f"{root} was signed; without {setting('sign_with')} the new "
                             "SHA512SUMS is not, and the old signature goes")
        atomic_write(staging.path(layout.SUMS), text)
        wanted = [i.path for i in items]
        drop = layout.stray_files(root, wanted)
        commit(staging, [*wanted, layout.DESCRIPTION, layout.SUMS, layout.SUMS_SIGNATURE],
               drop)
    return FetchResult(root, plan, image, tuple(artifacts), tuple(packages), tuple(items),
                       keys, operator is not None, tuple(drop), extras=extras)


def _fetch_phases(plan: Plan, check: SourceCheck, staging: Staging, downloader: Downloader,
                  verifier: Verifier, reporter: Reporter, since: Since | None = None
                  ) -> tuple[list[ImageResult], list[ArtifactResult], list[PackageResult],
                             list[DefendResult]]:
    """The images, the binaries, the packages and Defend's artifacts come from different
    servers: fetch them at the same time, each with its own --jobs transfers."""
    sizes = check.sizes()
    images = [check.image, *check.images]
    # Each phase announces every file it brings, the small ones too (checksums,
    # signatures, the images' manifests), as the sources gave their sizes.
    image_sizes = list(image_files(*images).values())
    reporter.phase_started(image_phase.PHASE, f"image {plan.image.reference} for "
                           f"{', '.join(plan.image.platforms)}" + (
                               f" and {len(check.images)} more" if check.images else ""),
                           total=sum(image_sizes), items=len(image_sizes))
    artifact_bytes = [sizes.get(a.bundle_path + suffix) for a in plan.artifacts
                      for suffix in ("", layout.ARTIFACT_CHECKSUM, layout.ARTIFACT_SIGNATURE)]
    reporter.phase_started(artifacts_phase.PHASE, f"{len(plan.artifacts)} binaries with "
                           "their .sha512 and .asc", items=len(artifact_bytes),
                           total=_known_total(artifact_bytes))
    package_bytes = [sizes.get(p.bundle_path + suffix) for p, _ in check.packages
                     for suffix in ("", layout.PACKAGE_SIGNATURE)]
    reporter.phase_started(packages_phase.PHASE, f"{len(check.packages)} packages with "
                           "their .sig", items=len(package_bytes),
                           total=_known_total(package_bytes))
    phases = [image_phase.PHASE, artifacts_phase.PHASE, packages_phase.PHASE]
    if plan.defend:
        reporter.phase_started(defend_phase.PHASE, f"Elastic Defend's artifacts for Endpoint "
                               f"{', '.join(d.endpoint_version for d in plan.defend)} (their "
                               "sizes come with the manifests)")
        phases.append(defend_phase.PHASE)
    with SidePool("airgap-phase", workers=4, on_failure=downloader.cancel) as pool:
        jobs: list[Future[Any]] = [
            pool.submit(fetch_images, images, staging, downloader, since,
                        plan.tailored is not None),
            pool.submit(fetch_artifacts, plan.artifacts, staging, downloader, verifier,
                        since),
            # A tailored registry's layer is composed from the zips themselves: a delta
            # downloads them all the same (and carries only those its base lacks).
            pool.submit(fetch_packages, check.packages, staging, downloader, verifier,
                        since if plan.tailored is None else None)]
        if plan.defend:
            jobs.append(pool.submit(fetch_defend, plan.defend, staging, downloader,
                                    check.defend_manifests))
        for job, phase in zip(jobs, phases, strict=True):
            job.add_done_callback(functools.partial(_phase_done, reporter, phase))
    raise_failures(jobs, "the fetch did not complete")
    return jobs[0].result(), jobs[1].result(), jobs[2].result(), \
        jobs[3].result() if plan.defend else []


def _known_total(sizes: Sequence[int | None]) -> int | None:
    """The bytes of a phase's files, when the sources gave every size."""
    return None if None in sizes else sum(s for s in sizes if s is not None)


def _phase_done(reporter: Reporter, phase: str, job: Future[Any]) -> None:
    reporter.phase_finished(phase, "done" if job.exception() is None else "failed")


def _with_space_left(exc: FileSystemError, check: SourceCheck,
                     staging: Staging) -> FileSystemError:
    """A full disk, with the file system and what the fetch still needs to download."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return exc
    system = file_system(staging.root)
    left = remaining_bytes(check, staging)
    what = "to download and compose" if to_compose(check, staging) else "to download"
    return FileSystemError(f"{exc.message} ({system}, {human_size(system.free)} free)",
                           details=[f"this fetch still has {human_size(left)} {what}: "
                                    "free that much there, then run the same command again; "
                                    "it resumes", *exc.details[1:]])


def _unchanged(root: Path, new: BundleDescription) -> bool:
    """Whether the bundle already holds exactly ``new`` (its time of making aside)."""
    if not (root / layout.SUMS).is_file():
        return False
    try:
        old = read_description(root)
    except AirgapError:
        return False
    return {**old.to_dict(), "created": ""} == {**new.to_dict(), "created": ""}


def _staged_anew(staging: Staging, items: Sequence[Item]) -> bool:
    """Whether a file of the new bundle was staged with other bytes than the bundle's
    copy: one that no longer verified there and was fetched again, a rewritten key or
    index. Then the bundle must be committed, even though it is described the same."""
    for item in items:
        staged, live = staging.path(item.path), staging.live(item.path)
        if staged.is_file() and not (live.is_file() and not live.is_symlink()
                                     and filecmp.cmp(staged, live, shallow=False)):
            return True
    return False


def _keep(staging: Staging, operator: OperatorKey | None, root: Path) -> None:
    """Leave the bundle as it is (signed anew when asked), and drop what was staged."""
    if operator is not None:
        operator.sign_to((root / layout.SUMS).read_bytes(), root / layout.SUMS_SIGNATURE)
    shutil.rmtree(staging.folder, ignore_errors=True)


def _signed(root: Path) -> bool:
    return (root / layout.SUMS_SIGNATURE).is_file()


def what_is_left(bundle: Path) -> str:
    """What a fetch into ``bundle`` stopped now leaves, read from the disk: for the line an
    interruption prints."""
    if not bundle.exists():
        return f"nothing was kept ({bundle} was not made): run the same command again"
    if (bundle / layout.STAGING).is_dir():
        return (f"{bundle} is as it was; what was fetched waits in {bundle}/"
                f"{layout.STAGING}/: run the same command again to go on from there")
    return f"{bundle} is as it was: run the same command again"
