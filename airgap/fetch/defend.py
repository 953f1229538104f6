"""Elastic Defend's protection artifacts: each Endpoint version's manifest, and every
artifact it lists, into ``BUNDLE/security/`` under the paths the server uses.

The manifest is fetched fresh on every run (Elastic updates it in place) into the
staging folder, so the bundle's copy is replaced only by the fetch's commit: a failed
run leaves it as it was. The check of the sources reads each manifest (a small zip,
whole) to count its artifacts; the fetch writes what it read into staging rather than
asking again, held to the same checks a download of it is, so each manifest is asked
for once per run. Each artifact is held to the size and SHA-256 the manifest
gives for it as served, and its content, once decompressed, to the decoded size and
SHA-256; a file that fails is not kept, one the bundle holds already is kept. An
artifact two manifests share is fetched once.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from airgap.bundle.defend import (
    MAX_MANIFEST_ZIP,
    DefendEntry,
    DefendManifestFile,
    read_manifest_zip,
    unsigned_warning,
)
from airgap.bundle.description import utc_timestamp
from airgap.bundle.staging import Staging
from airgap.errors import ChecksumMismatchError, ServerResponseError, VerificationError
from airgap.files import atomic_write
from airgap.manifest.plan import DefendItem
from airgap.net.download import Download, Downloader, Fetched
from airgap.reporter import Reporter
from airgap.trust.digests import CHUNK, Digests, Hasher

PHASE = "defend"


@dataclass(frozen=True)
class DefendResult:
    """One Endpoint version's manifest as fetched, and the artifacts it lists."""

    item: DefendItem
    manifest: Fetched
    document: DefendManifestFile
    fetched: str  # when the manifest was fetched, as bundle.json writes times
    artifacts: tuple[tuple[DefendEntry, Fetched], ...]


@dataclass(frozen=True)
class ReadManifest:
    """A Defend manifest as the check of the sources read it (a small zip, whole), and
    when: the fetch keeps these bytes instead of asking for them again."""

    content: bytes
    document: DefendManifestFile
    when: str


def fetch_defend(items: Sequence[DefendItem], staging: Staging, downloader: Downloader,
                 read: Mapping[str, ReadManifest] | None = None) -> list[DefendResult]:
    """Fetch every manifest (or keep the one ``read`` holds for its URL), then every
    artifact they list (in parallel), all verified."""
    held = read or {}
    manifests = downloader.run_all([functools.partial(_fetch_manifest, item, staging,
                                                      downloader, held.get(item.url))
                                    for item in items], what="Defend manifests")
    wanted: dict[str, tuple[DefendEntry, DefendItem]] = {}
    for item, _, document, _ in manifests:
        if not document.signed:
            downloader.reporter.warning(unsigned_warning(item.url))
        for entry in document.entries:
            earlier = wanted.get(entry.path)
            if earlier is not None and not earlier[0].same_file(entry):
                raise ServerResponseError(
                    f"{item.url} and {earlier[1].url} list /{entry.path} with different "
                    "contents", details=["fetch again later: Elastic may be updating them"])
            wanted.setdefault(entry.path, (entry, item))
    downloader.reporter.phase_sized(  # known now: the manifests give every size
        PHASE, sum(m.digests.size for _, m, _, _ in manifests)
        + sum(entry.encoded_size for entry, _ in wanted.values()), len(manifests) + len(wanted))
    downloads = [_artifact_download(entry, item, staging) for entry, item in wanted.values()]
    fetched = dict(zip(wanted, downloader.fetch_all(downloads), strict=True))
    return [DefendResult(item, manifest, document, when,
                         tuple((entry, fetched[entry.path]) for entry in document.entries))
            for item, manifest, document, when in manifests]


def _fetch_manifest(item: DefendItem, staging: Staging, downloader: Downloader,
                    read: ReadManifest | None
                    ) -> tuple[DefendItem, Fetched, DefendManifestFile, str]:
    dest = staging.path(item.bundle_path)
    # Always the newest: what an earlier run left is neither kept nor resumed.
    for leftover in (dest, dest.with_name(dest.name + ".part")):
        leftover.unlink(missing_ok=True)
    if read is not None:
        got, document = _keep_read(item, read.content, dest, downloader.reporter)
        return item, got, document, read.when
    documents: list[DefendManifestFile] = []

    def check(path: Path, digests: Digests) -> str:
        documents.append(read_manifest_zip(path, item.url))
        return f"manifest_version {documents[-1].manifest_version}"

    when = utc_timestamp()
    got = downloader.fetch(Download(item.url, dest, item.bundle_path,
                                    max_size=MAX_MANIFEST_ZIP, check=check, phase=PHASE))
    return item, got, documents[-1], when


def _keep_read(item: DefendItem, content: bytes, dest: Path, reporter: Reporter
               ) -> tuple[Fetched, DefendManifestFile]:
    """Write the manifest the check read to ``dest`` (atomically), held to what a download
    of it is held to: its size, then the zip, its manifest and signature member, as read
    back from the file; a manifest that fails is not kept."""
    key = str(dest)
    reporter.task_started(key, item.bundle_path, len(content), phase=PHASE)
    try:
        if len(content) > MAX_MANIFEST_ZIP:
            raise ServerResponseError(f"{item.url}: {len(content)} bytes, more than the "
                                      f"{MAX_MANIFEST_ZIP} allowed")
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(dest, content)
        document = read_manifest_zip(dest, item.url)
    except (VerificationError, ServerResponseError) as exc:
        dest.unlink(missing_ok=True)
        reporter.task_finished(key, "rejected", exc.message)
        raise
    except BaseException:
        reporter.task_finished(key, "failed")
        raise
    hasher = Hasher(sha256=False)
    hasher.update(content)
    reporter.task_advanced(key, len(content))
    reporter.task_finished(key, "fetched", f"manifest_version {document.manifest_version}")
    return Fetched(dest, item.url, hasher.digests(), reused=False), document


def _artifact_download(entry: DefendEntry, item: DefendItem, staging: Staging) -> Download:
    return Download(item.base_url + entry.path, staging.path(entry.bundle_path),
                    entry.bundle_path, size=entry.encoded_size,
                    sha256=entry.encoded_sha256, max_size=entry.encoded_size,
                    existing=staging.live(entry.bundle_path), phase=PHASE,
                    check=functools.partial(check_decoded, entry=entry))


def check_decoded(path: Path, digests: Digests, *, entry: DefendEntry) -> str:
    """The artifact's content, decompressed as the manifest says, has the decoded size and
    SHA-256 it gives (never more than that size is inflated)."""
    if entry.compression == "none":
        return ""  # encoded is decoded: the download already checked both
    inflate = zlib.decompressobj()
    digest = hashlib.sha256()
    size = 0
    limit = entry.decoded_size + 1
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                data = inflate.decompress(chunk, limit - size)
                while True:
                    size += len(data)
                    digest.update(data)
                    if size >= limit or not inflate.unconsumed_tail:
                        break
                    data = inflate.decompress(inflate.unconsumed_tail, limit - size)
                if size >= limit:
                    break
            if size < limit:
                tail = inflate.flush()
                size += len(tail)
                digest.update(tail)
    except zlib.error as exc:
        raise ChecksumMismatchError(f"{entry.identifier}: not zlib data as the manifest says "
                                    f"({exc})") from None
    if size != entry.decoded_size or digest.hexdigest() != entry.decoded_sha256:
        raise ChecksumMismatchError(f"{entry.identifier}: decompressed, it is not the "
                                    "content the manifest names (decoded size and SHA-256)")
    return "decoded sha256 ok"
