"""``airgap fetch --since BASE``: what the phases need not download, because BASE holds it.

A file is left to the base only when its content is known before it is downloaded:

- an image blob by its sha256 digest, which the manifest names;
- an artifact by the SHA-512 its ``.sha512`` names, when its ``.asc`` is byte for byte
  the one the base holds for that content (so the base's check of that signature holds);
- a package when its ``.sig`` is byte for byte the one the base holds for a package (a
  signature is made over one content: the same signature, the same zip).

The documents that say what is current are always fetched, a few KB each: the image's
manifests, every ``.sha512``, ``.asc`` and ``.sig``. A signature is accepted from the base
only when its signer is still trusted now. Whatever else a fetch writes that the base
holds (by SHA-512) is marked as from the base too, and not carried
(:func:`airgap.bundle.delta.write_delta`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from airgap.bundle import layout
from airgap.bundle.delta import Base, read_base, shown
from airgap.bundle.description import read_description
from airgap.errors import BundleError, UsageError, setting
from airgap.net.download import Download, Fetched
from airgap.reporter import Reporter
from airgap.trust.digests import Digests
from airgap.trust.gpg import TrustedKey

_BLOBS = f"{layout.IMAGES}/blobs/sha256/"


@dataclass(frozen=True)
class Held:
    """A file the base holds, as the phase would have fetched it, and who signed it."""

    fetched: Fetched
    signer: TrustedKey


def open_base(base: Path, output: Path) -> Base:
    """Read the base at ``base``, and refuse an output folder a delta must not go into;
    before anything is written or downloaded."""
    if output.resolve() == base.resolve():
        raise UsageError(f"{setting('output')} and {setting('since')} are the same folder "
                         f"({base}): a delta goes into a folder of its own")
    found = read_base(base)
    if (output / layout.SUMS).is_file() and (output / layout.DESCRIPTION).is_file():
        try:
            complete = read_description(output).delta is None
        except BundleError:
            complete = False
        if complete:
            raise BundleError(f"{output} is a complete bundle: a delta written there would "
                              "remove what it holds",
                              details=[f"give {setting('output')} a new or empty folder"])
    return found


class Since:
    """The base of a delta, as the three phases consult it before each download."""

    def __init__(self, base: Base, trusted: Mapping[str, TrustedKey],
                 reporter: Reporter) -> None:
        self.base = base
        self._trusted = trusted
        self._reporter = reporter
        self._by_sha512 = base.by_sha512()
        self._by_path = {i.path: i for i in base.items}
        self._blobs = {i.path.removeprefix(_BLOBS): i for i in base.items
                       if i.path.startswith(_BLOBS)}

    @property
    def shown(self) -> str:
        """The base's identity, as messages show it."""
        return shown(self.base.identity)

    def likely_held(self, sizes: Mapping[str, int | None]) -> int:
        """Of the files to fetch (path, size), the bytes the base probably holds: a blob
        it has, a file of the same size where it has one. For the space check only: what
        is really left out is decided file by file, by content."""
        return sum(size for path, size in sizes.items() if size is not None and (
            path.removeprefix(_BLOBS) in self._blobs if path.startswith(_BLOBS)
            else path in self._by_path and self._by_path[path].size == size))

    def blob(self, download: Download) -> Fetched | None:
        """The image blob ``download`` would fetch, when the base holds it."""
        if download.sha256 is None:
            return None
        item = self._blobs.get(download.sha256)
        if item is None or (download.size is not None and item.size != download.size):
            return None
        self._held(download.dest, download.label, item.size, download.phase)
        return Fetched(download.dest, download.url,
                       Digests(item.size, item.sha512, download.sha256), reused=True)

    def signed(self, dest: Path, url: str, signature: Fetched, sha512: str | None,
               phase: str) -> Held | None:
        """The file at ``url`` whose detached ``signature`` was just fetched, when the base
        holds that very signature of a file (of SHA-512 ``sha512``, when it is known) and
        its signer is still trusted."""
        held_signature = self._by_sha512.get(signature.digests.sha512)
        if held_signature is None or held_signature.verification.signature_of is None:
            return None
        file = self._by_path.get(held_signature.verification.signature_of)
        if file is None or (sha512 is not None and file.sha512 != sha512):
            return None
        signer = self._trusted.get(file.verification.signer or "")
        if signer is None or held_signature.verification.signer != signer.fingerprint:
            return None
        self._held(dest, file.path, file.size, phase)
        return Held(Fetched(dest, url, Digests(file.size, file.sha512), reused=True), signer)

    def _held(self, dest: Path, label: str, size: int, phase: str) -> None:
        self._reporter.task_kept(str(dest), label, size, phase=phase,
                                 detail=f"in the base {self.shown}: not carried")
