"""Agent and beats binaries: each file with its ``.sha512`` and ``.asc``, all verified.

They land in ``BUNDLE/downloads/<dir>/<file>``, the tree of artifacts.elastic.co's
``downloads/``, so the folder can be served as-is as an agent binary source. A file is
kept only when its SHA-512 matches its ``.sha512`` (Elastic's format, naming that file)
and its ``.asc`` is a valid signature by a trusted key; otherwise none of the three
stays in the bundle.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from airgap.bundle.staging import Staging
from airgap.errors import AirgapError, ChecksumMismatchError, SignatureError
from airgap.fetch.since import Since
from airgap.manifest.plan import ArtifactItem
from airgap.net.download import Download, Downloader, Fetched
from airgap.trust import openpgp
from airgap.trust.checksums import MAX_CHECKSUM_FILE, read_elastic_sha512
from airgap.trust.digests import Digests
from airgap.trust.gpg import TrustedKey, Verifier

MAX_SIGNATURE_FILE = 64 << 10
PHASE = "artifacts"


@dataclass(frozen=True)
class ArtifactResult:
    """A verified artifact and its two companions."""

    item: ArtifactItem
    file: Fetched
    checksum: Fetched
    signature: Fetched
    signer: TrustedKey


def check_armored_signature(path: Path, digests: Digests, *, name: str) -> None:
    """Refuse a signature file that is not ASCII-armoured OpenPGP (an error page, say)."""
    with path.open("rb") as handle:
        head = handle.read(len(openpgp.ARMOR_BEGIN) + 64).lstrip()
    if not head.startswith(openpgp.ARMOR_BEGIN):
        raise SignatureError(f"{name}: not an ASCII-armoured OpenPGP signature")


def _check_checksum_file(path: Path, digests: Digests, *, name: str) -> None:
    read_elastic_sha512(path, name)


def fetch_artifacts(items: Sequence[ArtifactItem], staging: Staging, downloader: Downloader,
                    verifier: Verifier, since: Since | None = None) -> list[ArtifactResult]:
    """Fetch and verify every artifact, in parallel; raise naming each one that fails.
    With ``since``, a file the base of a delta holds is not downloaded."""
    tasks = [functools.partial(_fetch_one, item, staging, downloader, verifier, since)
             for item in items]
    return downloader.run_all(tasks, what="artifacts")


class _StaleCompanion(AirgapError):
    """A kept .sha512 or .asc does not vouch for the file: not the file's fault (no
    VerificationError, so the file is neither rejected nor downloaded again for it)."""


def _fetch_one(item: ArtifactItem, staging: Staging, downloader: Downloader,
               verifier: Verifier, since: Since | None) -> ArtifactResult:
    path = item.bundle_path
    checksum_path, signature_path = path + ".sha512", path + ".asc"
    try:
        try:
            return _verified(item, staging, downloader, verifier, since, fresh=False)
        except _StaleCompanion as stale:
            # Elastic re-signed or re-published it, or the kept copy was damaged in a way
            # that still reads as a signature: the companions come again, once.
            downloader.reporter.warning(f"{stale.message}; fetching {checksum_path} and "
                                        f"{signature_path} again")
            return _verified(item, staging, downloader, verifier, since, fresh=True)
    except AirgapError:
        # Nothing unverified stays: the companions go with the file they vouch for.
        staging.path(checksum_path).unlink(missing_ok=True)
        staging.path(signature_path).unlink(missing_ok=True)
        raise


def _verified(item: ArtifactItem, staging: Staging, downloader: Downloader,
              verifier: Verifier, since: Since | None, *, fresh: bool) -> ArtifactResult:
    """The file, its .sha512 and its .asc, verified; ``fresh``: the two companions
    downloaded again, whatever an earlier run kept."""
    path = item.bundle_path
    checksum_path, signature_path = path + ".sha512", path + ".asc"
    if fresh:
        staging.path(checksum_path).unlink(missing_ok=True)
        staging.path(signature_path).unlink(missing_ok=True)
    signers: list[TrustedKey] = []
    checksum = downloader.fetch(Download(
        item.url + ".sha512", staging.path(checksum_path), checksum_path,
        max_size=MAX_CHECKSUM_FILE, existing=None if fresh else staging.live(checksum_path),
        phase=PHASE, check=functools.partial(_check_checksum_file, name=item.filename)))
    signature = downloader.fetch(Download(
        item.url + ".asc", staging.path(signature_path), signature_path,
        max_size=MAX_SIGNATURE_FILE, existing=None if fresh else staging.live(signature_path),
        phase=PHASE, check=functools.partial(check_armored_signature, name=signature_path)))
    kept = checksum.reused or signature.reused
    expected = read_elastic_sha512(checksum.dest, item.filename)
    held = since.signed(staging.path(path), item.url, signature, expected, PHASE) \
        if since is not None else None
    if held is not None:
        return ArtifactResult(item, held.fetched, checksum, signature, held.signer)

    def check(candidate: Path, digests: Digests) -> str:
        try:
            if digests.sha512 != expected:
                raise ChecksumMismatchError(
                    f"{path}: SHA-512 is {digests.sha512[:16]}…, but "
                    f"{item.filename}.sha512 says {expected[:16]}…: the file was altered "
                    "or damaged in transit")
            key = verifier.verify(candidate, signature.dest, name=path)
        except (ChecksumMismatchError, SignatureError) as failed:
            if kept:
                raise _StaleCompanion(f"{path}: its kept .sha512 or .asc does not vouch "
                                      f"for it ({failed.message})") from failed
            raise
        signers.append(key)
        return f"sha512 ok, signature ok ({key.key_id})"

    file = downloader.fetch(Download(item.url, staging.path(path), path, check=check,
                                     existing=staging.live(path), phase=PHASE))
    return ArtifactResult(item, file, checksum, signature, signers[-1])
