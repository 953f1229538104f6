"""``airgap fetch``: the whole plan into one verified, self-describing bundle.

The image, the artifacts and the packages are fetched (each phase in parallel); then
``keys/``, ``bundle.json`` and ``SHA512SUMS`` are written, last, so that a bundle that
has them is complete. A re-run reuses every file that still verifies and fetches only
what is missing or new; files an earlier run listed that the manifest no longer wants
are removed.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgap import __version__, bundle, oci
from airgap.artifacts import ArtifactResult, fetch_artifacts
from airgap.digests import hash_file
from airgap.download import Downloader, Fetched
from airgap.errors import AirgapError, BundleError, ManyErrors
from airgap.image import ImageResult, fetch_image
from airgap.manifest import load_manifest
from airgap.packages import PackageResult, fetch_packages
from airgap.plan import Plan, make_plan
from airgap.reporter import Reporter
from airgap.signatures import OperatorKey, TrustedKey, Verifier
from airgap.threads import abandon, wait_all
from airgap.transport import NetworkSettings, make_client


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
    items: tuple[bundle.Item, ...]
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
    bundle.check_output_folder(root)
    operator = OperatorKey(settings.sign_with, settings.gnupg_home) if settings.sign_with \
        else None
    if operator is not None:
        operator.check()  # a missing key or passphrase, before hours of downloads
    with bundle.BundleLock(root), make_client(network) as client, \
            Verifier(manifest.trust_keys) as verifier:
        for name in (bundle.SUMS, bundle.SUMS_SIGNATURE, bundle.DESCRIPTION):
            (root / name).unlink(missing_ok=True)  # incomplete until the end says otherwise
        downloader = Downloader(client, network, reporter)
        # The image, the binaries and the packages come from three different servers:
        # fetch them at the same time, each with its own --jobs transfers.
        phases = ThreadPoolExecutor(max_workers=3, thread_name_prefix="airgap-phase")
        image_job = phases.submit(fetch_image, plan.image, root, downloader)
        artifacts_job = phases.submit(fetch_artifacts, plan.artifacts, root, downloader,
                                      verifier)
        packages_job = phases.submit(fetch_packages, plan.packages, manifest.stack_version,
                                     manifest.sources.epr, root, downloader, verifier)
        jobs: list[Future[Any]] = [image_job, artifacts_job, packages_job]
        try:
            wait_all(jobs)
        except BaseException:
            downloader.cancel()
            abandon(phases, jobs)
            raise
        phases.shutdown()
        failures = [e for e in (job.exception() for job in jobs) if e is not None]
        # A phase that failed unexpectedly (a full disk, say) stops the others, which
        # then end interrupted: the cause is what to report, before any interruption.
        for failure in sorted(failures, key=lambda e: isinstance(e, KeyboardInterrupt)):
            if not isinstance(failure, AirgapError):
                raise failure
        errors = [e for e in failures if isinstance(e, AirgapError)]
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ManyErrors("the fetch did not complete", errors)
        image, artifacts, packages = \
            image_job.result(), artifacts_job.result(), packages_job.result()
        keys = tuple(verifier.keys.values())
        items = _describe(root, image, artifacts, packages, keys)
        removed = _tidy(root, bundle.stray_files(root, (i.path for i in items)))
        _write_description(root, plan, image, artifacts, packages, keys, items)
        sums = [(i.path, i.sha512) for i in items]
        sums.append((bundle.DESCRIPTION, hash_file(root / bundle.DESCRIPTION).sha512))
        text = bundle.format_sums(sums)
        if operator is not None:
            # Before SHA512SUMS exists: a bundle that has it is complete, signature included.
            operator.sign_to(text.encode(), root / bundle.SUMS_SIGNATURE)
        bundle.write_atomically(root / bundle.SUMS, text)
    return FetchResult(root, plan, image, tuple(artifacts), tuple(packages), tuple(items), keys,
                       settings.sign_with is not None, tuple(sorted(removed)))


def _item(root: Path, fetched: Fetched, kind: str, source: str | None,
          verification: dict[str, Any]) -> bundle.Item:
    return bundle.Item(bundle.relative(root, fetched.dest), kind, fetched.digests.size,
                       fetched.digests.sha512, source, verification)


def _image_items(root: Path, image: ImageResult) -> list[bundle.Item]:
    kinds = {image.stored.digest: "image-index" if image.stored.media_type in oci.INDEX_TYPES
             else "image-manifest"}
    for platform in image.platforms:
        kinds[platform.manifest.digest] = "image-manifest"
        kinds[platform.config.digest] = "image-config"
        kinds.update({layer.digest: "image-layer" for layer in platform.layers})
    items = []
    for fetched in image.files:
        digest = f"sha256:{fetched.digests.sha256}"
        items.append(_item(root, fetched, kinds.get(digest, "image-blob"), fetched.url,
                           {"sha256": "matches the blob's digest"}))
    for name in ("oci-layout", "index.json"):
        path = root / bundle.IMAGES / name
        digests = hash_file(path)
        items.append(bundle.Item(f"{bundle.IMAGES}/{name}", "oci-layout", digests.size,
                                 digests.sha512, None, {}))
    return items


def _describe(root: Path, image: ImageResult, artifacts: Sequence[ArtifactResult],
              packages: Sequence[PackageResult], keys: Iterable[TrustedKey]
              ) -> list[bundle.Item]:
    items = _image_items(root, image)
    for a in artifacts:
        file_path = bundle.relative(root, a.file.dest)
        checksum = bundle.relative(root, a.checksum.dest)
        signature = bundle.relative(root, a.signature.dest)
        items.append(_item(root, a.file, "artifact", a.file.url, {
            "product": a.item.product, "platform": f"{a.item.os}/{a.item.arch}",
            "format": a.item.format, "checksum": checksum, "signature": signature,
            "signer": a.signer.fingerprint}))
        items.append(_item(root, a.checksum, "artifact-checksum", a.checksum.url,
                           {"checksum_of": file_path}))
        items.append(_item(root, a.signature, "artifact-signature", a.signature.url,
                           {"signature_of": file_path, "signer": a.signer.fingerprint}))
    for p in packages:
        file_path = bundle.relative(root, p.file.dest)
        signature = bundle.relative(root, p.signature.dest)
        items.append(_item(root, p.file, "package", p.file.url, {
            "package": p.package.name, "version": p.package.version,
            "signature": signature, "signer": p.signer.fingerprint}))
        items.append(_item(root, p.signature, "package-signature", p.signature.url,
                           {"signature_of": file_path, "signer": p.signer.fingerprint}))
    keys_dir = root / bundle.KEYS
    keys_dir.mkdir(exist_ok=True)
    for key in keys:
        path = keys_dir / f"{key.fingerprint}.asc"
        bundle.write_atomically(path, key.armored)
        digests = hash_file(path)
        items.append(bundle.Item(f"{bundle.KEYS}/{path.name}", "key", digests.size,
                                 digests.sha512, None, {"fingerprint": key.fingerprint}))
    return items


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


def _write_description(root: Path, plan: Plan, image: ImageResult,
                       artifacts: Sequence[ArtifactResult], packages: Sequence[PackageResult],
                       keys: Sequence[TrustedKey], items: Sequence[bundle.Item]) -> None:
    manifest = plan.manifest
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    document = {
        "format": bundle.FORMAT,
        "tool": {"name": "airgap", "version": __version__},
        "created": created.replace("+00:00", "Z"),
        "manifest": {
            "path": manifest.source,
            "given": manifest.document,
            "resolved": {
                "stack_version": manifest.stack_version,
                "platforms": {"os": list(manifest.platforms.os),
                              "arch": list(manifest.platforms.arch),
                              "formats": list(manifest.platforms.formats)},
                "image": str(image.reference),
                "packages": {p.package.name: p.package.version for p in packages},
                "products": sorted({a.item.product for a in artifacts}),
            },
        },
        "image": {
            "reference": str(image.reference),
            "source": image.source,
            "upstream_digest": image.upstream_digest,
            "upstream_media_type": image.upstream_media_type,
            "digest": image.stored.digest,
            "media_type": image.stored.media_type,
            "layout": bundle.IMAGES,
            "platforms": {p.platform: {"manifest": p.manifest.digest, "config": p.config.digest,
                                       "layers": [layer.digest for layer in p.layers]}
                          for p in image.platforms},
        },
        "keys": [{"fingerprint": k.fingerprint, "uids": list(k.uids), "source": k.source,
                  "path": f"{bundle.KEYS}/{k.fingerprint}.asc", "elastic": k.is_elastic}
                 for k in keys],
        "notes": list(plan.notes),
        "items": [i.to_dict() for i in sorted(items, key=lambda i: i.path)],
    }
    bundle.write_atomically(root / bundle.DESCRIPTION,
                            json.dumps(document, indent=2, default=str) + "\n")
