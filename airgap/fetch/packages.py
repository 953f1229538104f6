"""Integration packages from the package registry (EPR), with their ``.sig``.

For each package, ``/search`` is asked as Kibana asks it (its version, GA only, the spec
range it reads; :func:`airgap.package_registry.epr_search_path`) and names the newest compatible
version, every one, or confirms a pinned one (:mod:`airgap.fetch.selection`); its zip and
signature come from the paths the answer gives, into ``BUNDLE/packages/<name>/``. Kibana
does not verify packages uploaded by hand, so the bundle verifies them before transfer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgap import package_registry
from airgap.bundle.layout import PACKAGES
from airgap.bundle.staging import Staging
from airgap.errors import AirgapError, NotFoundError, SignatureError
from airgap.fetch.artifacts import MAX_SIGNATURE_FILE, check_armored_signature
from airgap.fetch.selection import choose, offered_versions
from airgap.fetch.since import Since
from airgap.manifest.plan import PackageItem
from airgap.net.download import Download, Downloader, Fetched
from airgap.trust.digests import Digests
from airgap.trust.gpg import TrustedKey, Verifier

MAX_PACKAGE_SIZE = 512 << 20  # Kibana takes uploads of at most 100 MB; stay well above
PHASE = "packages"


@dataclass(frozen=True)
class ResolvedPackage:
    """A version ``/search`` offered for a package, and where its files are."""

    name: str
    version: str
    search_url: str
    url: str
    signature_url: str

    @property
    def bundle_path(self) -> str:
        """``packages/<name>/<name>-<version>.zip``."""
        name = package_registry.package_filename(self.name, self.version)
        return f"{PACKAGES}/{self.name}/{name}"


@dataclass(frozen=True)
class PackageResult:
    """A verified package zip and its signature."""

    package: ResolvedPackage
    reason: str
    file: Fetched
    signature: Fetched
    signer: TrustedKey


def newest_version(name: str, answer: Any, source: str) -> str:
    """The newest version of ``name`` in a ``/search`` answer (a list of packages)."""
    offered = offered_versions(name, answer, source)
    if not offered:
        raise NotFoundError(f"{source}: no version of {name}")
    return offered[-1].version


def resolve(item: PackageItem, stack_version: str, epr: str,
            downloader: Downloader) -> list[ResolvedPackage]:
    """Ask the EPR which versions of ``item`` to take, and where their files are."""
    answer = downloader.fetch_small(item.search_url, accept="application/json")
    document = answer.json()
    offered = offered_versions(item.name, document, item.search_url)
    chosen = choose(item.name, offered, version=item.version, all_versions=item.all_versions,
                    where=f"Kibana {stack_version} on {epr}", why=item.reason)
    resolved = []
    for version in chosen:
        if version.signature_path is None:
            raise SignatureError(
                f"package {item.name} {version.version}: {epr} publishes no signature for it "
                "(its search entry has no signature_path), so it cannot be verified",
                details=["airgap carries only packages it can verify: pin another version "
                         "in registry.packages, or ask the registry's operator"])
        resolved.append(ResolvedPackage(
            item.name, version.version, item.search_url,
            package_registry.epr_file_url(epr, version.download),
            package_registry.epr_file_url(epr, version.signature_path)))
    return resolved


def fetch_packages(packages: Sequence[tuple[ResolvedPackage, str]], staging: Staging,
                   downloader: Downloader, verifier: Verifier, since: Since | None = None
                   ) -> list[PackageResult]:
    """Download and verify every resolved package (with why it is there), in parallel;
    with ``since``, a zip the base of a delta holds is not downloaded."""
    tasks = [functools.partial(fetch_package, package, reason, staging, downloader, verifier,
                               since) for package, reason in packages]
    return downloader.run_all(tasks, what="packages")


def fetch_package(package: ResolvedPackage, reason: str, staging: Staging,
                  downloader: Downloader, verifier: Verifier, since: Since | None = None
                  ) -> PackageResult:
    """Download one package and its ``.sig`` into staging, or keep the bundle's copies
    when they still verify; the zip must be signed by a trusted key."""
    path = package.bundle_path
    dest = staging.path(path)
    signature_path = path + ".sig"
    signers: list[TrustedKey] = []
    try:
        signature = downloader.fetch(Download(
            package.signature_url, staging.path(signature_path), signature_path,
            max_size=MAX_SIGNATURE_FILE, existing=staging.live(signature_path), phase=PHASE,
            check=functools.partial(check_armored_signature, name=signature_path)))
        held = since.signed(dest, package.url, signature, None, PHASE) \
            if since is not None else None
        if held is not None:
            return PackageResult(package, reason, held.fetched, signature, held.signer)

        def check(candidate: Path, digests: Digests) -> str:
            key = verifier.verify(candidate, signature.dest, name=path)
            signers.append(key)
            return f"signature ok ({key.key_id})"

        file = downloader.fetch(Download(package.url, dest, path, max_size=MAX_PACKAGE_SIZE,
                                         existing=staging.live(path), phase=PHASE,
                                         check=check))
    except AirgapError:
        staging.path(signature_path).unlink(missing_ok=True)
        raise
    return PackageResult(package, reason, file, signature, signers[-1])
