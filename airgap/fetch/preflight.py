"""Answers in the first seconds: every source a fetch will use, asked before any large
download (``airgap plan --check`` runs the same, and downloads nothing).

Each server must answer, with a TLS certificate the run trusts; the registry must have
the image for every wanted platform; the package registry must know every integration
(an unknown name is a manifest error naming the line, with the closest known names);
every planned binary must be there (a ``HEAD``, which also gives its size); every Elastic
Defend manifest must be there and read as one (a small zip, read whole: a 404 is a
manifest error naming the Endpoint version), and the artifacts it lists are counted; the
fetch keeps what was read (``SourceCheck.defend_manifests``) rather than asking again. The
sizes then tell whether the bundle's file system has room for what remains to download,
and, for a tailored registry, for the packages layer composed from the packages.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap.bundle.defend import MAX_MANIFEST_ZIP, read_manifest_data
from airgap.bundle.description import utc_timestamp
from airgap.bundle.layout import ARTIFACT_CHECKSUM, ARTIFACT_SIGNATURE, PACKAGE_SIGNATURE
from airgap.bundle.staging import Staging
from airgap.errors import (
    FileSystemError,
    ManifestError,
    NotFoundError,
    ServerResponseError,
    setting,
)
from airgap.fetch.defend import ReadManifest
from airgap.fetch.image import ResolvedImage, image_files, resolve_image
from airgap.fetch.packages import ResolvedPackage, resolve
from airgap.fetch.tailored import estimated_size, layer_in_bundle
from airgap.files import PART, file_system
from airgap.manifest.plan import ArtifactItem, DefendItem, PackageItem, Plan
from airgap.net.download import Downloader
from airgap.net.transport import NetworkSettings, make_client, open_stream
from airgap.reporter import Reporter
from airgap.threads import SidePool, raise_failures
from airgap.units import human_size

#: Room left free on the bundle's file system beyond what the downloads take (the index,
#: signatures, keys, and what the file system itself needs): this, and 1% more.
MARGIN = 1 << 20
ENDPOINT_ARTIFACTS = "security.endpoint_artifacts"


@dataclass(frozen=True)
class SourceCheck:
    """What the sources answered: the image resolved, every binary's size, every package
    resolved (with why it is there) and its size. A size is None when a server gave none.
    For a tailored registry, ``composed`` is about what its packages layer will take."""

    image: ResolvedImage
    artifacts: Mapping[str, int | None]
    packages: tuple[tuple[ResolvedPackage, str], ...]
    package_sizes: Mapping[str, int | None]
    images: tuple[ResolvedImage, ...] = ()  # those besides the package registry's
    composed: int | None = None
    #: Elastic Defend's manifests and every artifact they list, by path in the bundle.
    defend: Mapping[str, int | None] = field(default_factory=dict)
    #: The small files that come with them: each binary's .sha512 and .asc, each
    #: package's .sig, by their paths in the bundle.
    companions: Mapping[str, int | None] = field(default_factory=dict)
    #: Each Elastic Defend manifest as read, by its URL: the fetch keeps it.
    defend_manifests: Mapping[str, ReadManifest] = field(default_factory=dict)

    def sizes(self) -> dict[str, int | None]:
        """Every file to fetch by its path in the bundle, with its size when known: the
        images' documents and blobs, the binaries, the packages, and their companions."""
        found: dict[str, int | None] = dict(image_files(self.image, *self.images))
        found.update(self.artifacts)
        found.update(self.package_sizes)
        found.update(self.defend)
        found.update(self.companions)
        return found

    @property
    def total(self) -> int:
        """The bytes of every file whose size is known."""
        return sum(size for size in self.sizes().values() if size is not None)

    @property
    def unknown(self) -> int:
        """How many files have no known size."""
        return sum(1 for size in self.sizes().values() if size is None)

    def to_dict(self) -> dict[str, Any]:
        """What ``plan --check`` found, for ``--json``."""
        return {"bytes": self.total, "files_of_unknown_size": self.unknown,
                "image": {"digest": self.image.upstream_digest, "bytes": self.image.size},
                "packages": _versions(self.packages),
                **({"composed_bytes": self.composed} if self.composed is not None else {}),
                "sizes": self.sizes()}


def _versions(packages: Sequence[tuple[ResolvedPackage, str]]) -> dict[str, str | list[str]]:
    """Each package's version; every version, for a package taken in several."""
    found: dict[str, list[str]] = {}
    for package, _ in packages:
        found.setdefault(package.name, []).append(package.version)
    return {name: versions[0] if len(versions) == 1 else versions
            for name, versions in found.items()}


def check_plan(plan: Plan, ca_cert: Path | None, jobs: int,
               reporter: Reporter) -> SourceCheck:
    """``airgap plan --check``: :func:`check_sources` with a client of its own."""
    cas = dict.fromkeys(p for p in (plan.manifest.sources.ca_cert, ca_cert) if p)
    network = NetworkSettings(ca_certs=tuple(cas), jobs=jobs)
    reporter.phase_started("check", "asking every source")
    with make_client(network) as client:
        check = check_sources(plan, Downloader(client, network, reporter))
    reporter.phase_finished("check", f"{human_size(check.total)} in {len(check.sizes())} "
                                     "files")
    return check


def check_sources(plan: Plan, downloader: Downloader) -> SourceCheck:
    """Ask every source about everything ``plan`` needs, the three at once; raise the
    errors found, all of them, before anything large is downloaded."""
    with downloader.quickly(), \
            SidePool("airgap-check", workers=4, on_failure=downloader.cancel) as side:
        images = side.submit(_resolve_images, plan, downloader)
        artifacts = side.submit(_artifact_sizes, plan.artifacts, downloader)
        packages = side.submit(_resolve_packages, plan, downloader)
        defend = side.submit(_defend_sizes, plan, downloader)
    raise_failures([images, artifacts, packages, defend],
                   "the sources cannot give everything the manifest asks for")
    resolved, sizes, signatures = packages.result()
    first, *others = images.result()
    binaries, companions = artifacts.result()
    composed = None
    if plan.tailored is not None:
        known = [size for size in sizes.values() if size is not None]
        composed = estimated_size(plan.tailored.package_path, sizes, known)
    defend_sizes, manifests = defend.result()
    return SourceCheck(first, binaries, resolved, sizes, tuple(others), composed,
                       defend=defend_sizes, companions={**companions, **signatures},
                       defend_manifests=manifests)


def _resolve_images(plan: Plan, downloader: Downloader) -> list[ResolvedImage]:
    """The package registry image, then the others, each resolved (small documents)."""
    return [resolve_image(plan.image, downloader, base=plan.tailored is not None),
            *(resolve_image(item, downloader, registry=False) for item in plan.images)]


def probe_size(downloader: Downloader, url: str, label: str) -> int | None:
    """The size of the file at ``url`` (``HEAD``; a ranged ``GET`` where a server refuses
    ``HEAD``), or None when the server does not say; NotFoundError naming ``label``."""
    def ask() -> int | None:
        try:
            response = open_stream(downloader.client, url, method="HEAD",
                                   headers={"Accept-Encoding": "identity"},
                                   accept_status=frozenset({405, 501}))
        except NotFoundError:
            raise NotFoundError(f"{label}: not published at {url} (404)",
                                details=["check stack.version, platforms and the products "
                                         "against what Elastic publishes"]) from None
        response.close()
        length = response.headers.get("content-length", "")
        if response.status_code not in (405, 501):
            return int(length) if length.isdigit() else None
        ranged = open_stream(downloader.client, url, headers={
            "Range": "bytes=0-0", "Accept-Encoding": "identity"})
        ranged.close()
        total = ranged.headers.get("content-range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None

    return downloader.retrying(ask, f"HEAD {url}")


def _artifact_sizes(items: Sequence[ArtifactItem], downloader: Downloader
                    ) -> tuple[dict[str, int | None], dict[str, int | None]]:
    """Each binary's size, and its .sha512's and .asc's (a missing one is found now)."""
    files = [(item.url + suffix, item.bundle_path + suffix)
             for item in items for suffix in ("", ARTIFACT_CHECKSUM, ARTIFACT_SIGNATURE)]
    tasks = [functools.partial(probe_size, downloader, url, path) for url, path in files]
    sizes = downloader.run_all(tasks, what="binaries") if tasks else []
    found = {path: size for (_, path), size in zip(files, sizes, strict=True)}
    binaries = {item.bundle_path: found.pop(item.bundle_path) for item in items}
    return binaries, found


def _defend_sizes(plan: Plan, downloader: Downloader
                  ) -> tuple[dict[str, int | None], dict[str, ReadManifest]]:
    """Each Defend manifest (small: read whole, as the fetch will check it), by URL, and
    the size of it and of every artifact it lists."""
    tasks = [functools.partial(_defend_manifest, plan, item, downloader)
             for item in plan.defend]
    found = downloader.run_all(tasks, what="Defend manifests") if tasks else []
    sizes: dict[str, int | None] = {}
    for item, read in zip(plan.defend, found, strict=True):
        sizes[item.bundle_path] = len(read.content)
        sizes.update((entry.bundle_path, entry.encoded_size) for entry in read.document.entries)
    return sizes, {item.url: read for item, read in zip(plan.defend, found, strict=True)}


def _defend_manifest(plan: Plan, item: DefendItem, downloader: Downloader) -> ReadManifest:
    when = utc_timestamp()
    try:
        answer = downloader.fetch_small(item.url, max_size=MAX_MANIFEST_ZIP)
    except NotFoundError:
        manifest = plan.manifest
        chosen = manifest.security.endpoint_versions
        if chosen is None:  # auto: the stack version, for the endpoint integration
            where, hint = manifest.where("stack.version"), f"set {ENDPOINT_ARTIFACTS} to " \
                "the Endpoint versions in use, or false"
        else:
            key = f"{ENDPOINT_ARTIFACTS}[{chosen.index(item.endpoint_version)}]"
            where = manifest.where(key if key in manifest.lines else ENDPOINT_ARTIFACTS)
            hint = "check the Endpoint version (Elastic publishes one manifest for each " \
                "Endpoint release)"
        raise ManifestError(f"{where}: Elastic Defend's artifacts for Endpoint "
                            f"{item.endpoint_version} are not published at {item.url} (404)",
                            details=[hint]) from None
    return ReadManifest(answer.content, read_manifest_data(answer.content, item.url), when)


def _resolve_packages(plan: Plan, downloader: Downloader
                      ) -> tuple[tuple[tuple[ResolvedPackage, str], ...],
                                 dict[str, int | None], dict[str, int | None]]:
    """Every package resolved, with why; the zips' sizes, and their .sig's."""
    manifest = plan.manifest
    epr = manifest.sources.epr

    def one(item: PackageItem) -> list[ResolvedPackage]:
        try:
            return resolve(item, manifest.stack_version, epr, downloader)
        except NotFoundError as missing:
            _unknown_package(plan, item, downloader, missing)
            raise

    tasks = [functools.partial(one, item) for item in plan.packages]
    found = downloader.run_all(tasks, what="packages") if tasks else []
    # A package may come in several versions (registry.all_versions): each is a file.
    resolved = tuple((package, item.reason)
                     for versions, item in zip(found, plan.packages, strict=True)
                     for package in versions)
    files = [file for package, _ in resolved for file in (
        (package.url, package.bundle_path),
        (package.signature_url, package.bundle_path + PACKAGE_SIGNATURE))]
    probes = [functools.partial(probe_size, downloader, url, path) for url, path in files]
    sizes = downloader.run_all(probes, what="package sizes") if probes else []
    probed = {path: size for (_, path), size in zip(files, sizes, strict=True)}
    zips = {package.bundle_path: probed.pop(package.bundle_path) for package, _ in resolved}
    return resolved, zips, probed


def _unknown_package(plan: Plan, item: PackageItem, downloader: Downloader,
                     missing: NotFoundError) -> None:
    """Raise a manifest error when ``item`` names no package the registry has at all
    (a typo), with the closest names, or a pinned version it does not offer; return when
    it only has no compatible version, or when no key of the manifest names it (a package
    Fleet installs at setup)."""
    epr = plan.manifest.sources.epr
    where = _where(plan, item.name)
    if where is None:
        return
    if _search(downloader, f"{epr}search?package={item.name}&prerelease=true", epr):
        if item.version is None:
            return
        # a pinned version the registry does not offer for this Kibana is a manifest
        # error like a misspelt name: the file's line, exit 2
        raise ManifestError(f"{plan.manifest.where(where)}: {missing.message}",
                            details=missing.details) from missing
    names = sorted({str(p.get("name")) for p in _search(
        downloader, f"{epr}search?prerelease=true", epr) if isinstance(p, dict)})
    close = difflib.get_close_matches(item.name, names, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(n) for n in close)}?" if close else \
        f" ({len(names)} packages are)"
    raise ManifestError(f"{plan.manifest.where(where)}: {item.name!r} "
                        f"is not a package of {epr}{hint}") from missing


def _where(plan: Plan, name: str) -> str | None:
    """The manifest key that asks for package ``name``: an integration, or one of a
    tailored registry's ``registry.packages``."""
    manifest = plan.manifest
    if name in manifest.integrations:
        return f"integrations[{manifest.integrations.index(name)}]"
    extras = [extra.name for extra in manifest.registry.packages]
    if name in extras:
        return f"registry.packages[{extras.index(name)}]"
    return None


def _search(downloader: Downloader, url: str, epr: str) -> list[Any]:
    document = downloader.fetch_small(url, accept="application/json").json()
    if not isinstance(document, list):
        raise ServerResponseError(f"{epr}: /search did not answer a list of packages")
    return document


def remaining_bytes(check: SourceCheck, staging: Staging) -> int:
    """What is left to download (and compose: :func:`to_compose`): files the bundle or the
    staging folder already hold whole count for nothing, partial downloads for what they
    lack."""
    left = 0
    for relative, size in check.sizes().items():
        if size is None:
            continue
        have = 0
        for path in (staging.live(relative), staging.path(relative)):
            if path.is_file() and path.stat().st_size == size:
                have = size
                break
        else:
            part = staging.path(relative + PART)
            if part.is_file():
                have = min(part.stat().st_size, size)
        left += size - have
    return left + to_compose(check, staging)


def to_compose(check: SourceCheck, staging: Staging) -> int:
    """About what a tailored registry's packages layer will take, unless the bundle's can
    most likely be kept; 0 for any other registry."""
    if not check.composed or layer_in_bundle(staging, check.package_sizes):
        return 0
    return check.composed


def check_space(staging: Staging, needed: int, *, composing: bool = False) -> None:
    """Refuse to start downloads the bundle's file system has no room for (``needed``
    counts a tailored registry's packages layer too when ``composing``)."""
    system = file_system(staging.root)
    wanted = needed + MARGIN + needed // 100
    if wanted <= system.free:
        return
    what = "to download and compose" if composing else "to download"
    raise FileSystemError(
        f"{staging.root}: not enough space on {system}: this fetch still has "
        f"{human_size(needed)} {what} and {human_size(system.free)} are free",
        details=[f"free {human_size(wanted - system.free)} there, or give "
                 f"{setting('output')} a folder on another file system"])
