"""Integration packages from the package registry (EPR), with their ``.sig``.

For each package, ``/search`` is asked as Kibana asks it (its version, GA only, the spec
range it reads; :func:`airgap.elastic.epr_search_path`) and names the newest compatible
version, every one, or confirms a pinned one (:mod:`airgap.fetch.selection`); its zip and
signature come from the paths the answer gives, into ``BUNDLE/packages/<name>/``. Kibana
does not verify packages uploaded by hand, so the bundle verifies them before transfer.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgap import elastic
from airgap.bundle.layout import PACKAGES
from airgap.errors import AirgapError, NotFoundError, ServerResponseError, SignatureError
from airgap.fetch.artifacts import MAX_SIGNATURE_FILE, check_armored_signature
from airgap.fetch.selection import choose, offered_versions
from airgap.manifest.plan import PackageItem
from airgap.net.download import Download, Downloader, Fetched
from airgap.trust.digests import Digests
from airgap.trust.gpg import TrustedKey, Verifier

MAX_PACKAGE_SIZE = 512 << 20  # Kibana takes uploads of at most 100 MB; stay well above


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
        return f"{PACKAGES}/{self.name}/{elastic.package_filename(self.name, self.version)}"


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


def fetch_packages(items: Sequence[PackageItem], stack_version: str, epr: str, bundle: Path,
                   downloader: Downloader, verifier: Verifier) -> list[PackageResult]:
    """Resolve every package (all searches first), then download and verify every
    version chosen, in parallel."""
    searches = [functools.partial(resolve, item, stack_version, epr, downloader)
                for item in items]
    chosen = [(package, item.reason) for item, found in
              zip(items, downloader.run_all(searches, what="package searches"), strict=True)
              for package in found]
    tasks = [functools.partial(_fetch_one, package, reason, bundle, downloader, verifier)
             for package, reason in chosen]
    return downloader.run_all(tasks, what="packages")


def resolve(item: PackageItem, stack_version: str, epr: str,
            downloader: Downloader) -> list[ResolvedPackage]:
    """Ask the EPR which versions of ``item`` to take, and where their files are."""
    answer = downloader.fetch_small(item.search_url, accept="application/json")
    try:
        document = json.loads(answer.content)
    except (ValueError, RecursionError):
        raise ServerResponseError(f"{item.search_url}: the answer is not JSON") from None
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
            elastic.epr_file_url(epr, version.download),
            elastic.epr_file_url(epr, version.signature_path)))
    return resolved


def _fetch_one(package: ResolvedPackage, reason: str, bundle: Path, downloader: Downloader,
               verifier: Verifier) -> PackageResult:
    dest = bundle / package.bundle_path
    name = dest.name
    signature_dest = dest.with_name(name + ".sig")
    signers: list[TrustedKey] = []
    try:
        signature = downloader.fetch(Download(
            package.signature_url, signature_dest, f"{name}.sig", max_size=MAX_SIGNATURE_FILE,
            check=functools.partial(check_armored_signature, name=f"{name}.sig")))

        def check(path: Path, digests: Digests) -> None:
            signers.append(verifier.verify(path, signature.dest, name=name))

        file = downloader.fetch(Download(package.url, dest, name, max_size=MAX_PACKAGE_SIZE,
                                         check=check))
    except AirgapError:
        signature_dest.unlink(missing_ok=True)
        raise
    return PackageResult(package, reason, file, signature, signers[-1])
