"""Integration packages from the package registry (EPR), with their ``.sig``.

For each integration, ``/search`` names the newest GA version compatible with the
stack's Kibana; its zip and signature land in ``BUNDLE/packages/<name>/``. Kibana does
not verify packages uploaded by hand, so the bundle verifies them before transfer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgap import elastic
from airgap.bundle.layout import PACKAGES
from airgap.bundle.staging import Staging
from airgap.errors import AirgapError, NotFoundError, ServerResponseError
from airgap.fetch.artifacts import MAX_SIGNATURE_FILE, check_armored_signature
from airgap.fetch.since import Since
from airgap.manifest.plan import PackageItem
from airgap.net.download import Download, Downloader, Fetched
from airgap.trust.digests import Digests
from airgap.trust.gpg import TrustedKey, Verifier

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?\Z")
MAX_PACKAGE_SIZE = 512 << 20  # Kibana takes uploads of at most 100 MB; stay well above
PHASE = "packages"


@dataclass(frozen=True)
class ResolvedPackage:
    """The version ``/search`` chose for an integration, and where to get it."""

    name: str
    version: str
    search_url: str
    url: str

    @property
    def bundle_path(self) -> str:
        """``packages/<name>/<name>-<version>.zip``."""
        return f"{PACKAGES}/{self.name}/{self.name}-{self.version}.zip"


@dataclass(frozen=True)
class PackageResult:
    """A verified package zip and its signature."""

    package: ResolvedPackage
    reason: str
    file: Fetched
    signature: Fetched
    signer: TrustedKey


def version_key(version: str) -> tuple[int, int, int, int, str]:
    """Semantic version order: a pre-release sorts before its release."""
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(version)
    major, minor, patch, pre = match.groups()
    return int(major), int(minor), int(patch), 0 if pre else 1, pre or ""


def newest_version(name: str, answer: Any, source: str) -> str:
    """The newest version of ``name`` in a ``/search`` answer (a list of packages)."""
    if not isinstance(answer, list):
        raise ServerResponseError(f"{source}: expected a JSON list of packages")
    versions = []
    for entry in answer:
        if not isinstance(entry, dict) or entry.get("name") != name:
            continue
        version = entry.get("version")
        if not isinstance(version, str) or not _VERSION.match(version):
            raise ServerResponseError(f"{source}: {version!r} is not a package version")
        versions.append(version)
    if not versions:
        raise NotFoundError("")
    return max(versions, key=version_key)


def resolve(item: PackageItem, stack_version: str, epr: str,
            downloader: Downloader) -> ResolvedPackage:
    """Ask the EPR which version of ``item`` to take."""
    answer = downloader.fetch_small(item.search_url, accept="application/json")
    document = answer.json()
    try:
        version = newest_version(item.name, document, item.search_url)
    except NotFoundError:
        raise NotFoundError(f"integration {item.name}: no version is compatible with Kibana "
                            f"{stack_version} on {epr}",
                            details=["check the name, or remove it from `integrations`"]
                            ) from None
    return ResolvedPackage(item.name, version, item.search_url,
                           epr + elastic.epr_package_path(item.name, version))


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
            package.url + ".sig", staging.path(signature_path), signature_path,
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
