"""The checks of one bundle, for ``airgap verify`` (:mod:`airgap.bundle.verify`): its
staging folder, SHA512SUMS, bundle.json, every file hashed again, the signatures each
file needs and the keys they count with, and the checksum files beside the binaries.

:class:`BundleCheck` collects what it finds as :class:`Problem` s and warnings; the order
the checks run in, and what vouches for what, are :func:`~airgap.bundle.verify.verify_bundle`'s.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from airgap.bundle import layout
from airgap.bundle.delta import identity, target_files
from airgap.bundle.description import BundleDescription, read_description
from airgap.bundle.signed import Signed, elastic_checksum, must_be_signed, recorded_keys
from airgap.bundle.staging import interrupted_commit, pending
from airgap.bundle.sums import parse_sums
from airgap.bundle.vouch import unvouched_signer
from airgap.errors import AirgapError, BundleError, setting
from airgap.reporter import Reporter
from airgap.threads import map_in_threads
from airgap.trust.digests import Digests, hash_file
from airgap.trust.gpg import Verifier
from airgap.units import human_size

_BLOBS = f"{layout.IMAGES}/blobs/sha256/"
_DEFEND = f"{layout.SECURITY}/"
#: The folders whose files can leave the bundle: verify vouches for all of them.
EVERY_AREA = frozenset({layout.IMAGES, layout.DOWNLOADS, layout.PACKAGES, layout.SECURITY,
                        layout.TOOLS})


def wants_sha256(path: str) -> bool:
    """Whether a verification checks the file's SHA-256 as well as its SHA-512: an image
    blob's against its name, a Defend artifact's against its manifest."""
    return path.startswith((_BLOBS, _DEFEND))


@dataclass(frozen=True)
class Problem:
    """Something wrong with the bundle: which file, what kind, and what exactly."""

    path: str
    kind: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind, "message": self.message}


class BundleCheck:
    """Collects problems while it checks one bundle."""

    def __init__(self, root: Path, regular: set[str]) -> None:
        self.root = root
        self.regular = regular
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.digests: dict[str, str] = {}
        self.sha256: dict[str, str] = {}  # of image blobs and Defend's artifacts
        self.sizes: dict[str, int] = {}
        self.taken_as_written = 0  # files whose digests came from their writer's own pass
        self.described: BundleDescription | None = None
        self.scope: frozenset[str] = EVERY_AREA
        self.unvouched_keys: set[str] = set()  # recorded keys/ that nothing outside vouches for
        self.not_vouched = 0  # signatures outside the scope by such a key: valid, not vouched
        self.from_base: set[str] = set()  # a delta's files that its base holds
        self.delta_of: str | None = None
        self.layer_packages = 0
        self.stop = threading.Event()  # set on Ctrl-C: work in progress gives up
        self._lock = threading.Lock()

    def add(self, path: str, kind: str, message: str) -> None:
        with self._lock:
            self.problems.append(Problem(path, kind, message))

    def staging(self) -> None:
        """What an unfinished fetch left in the staging folder, which is not the bundle's."""
        folder = self.root / layout.STAGING
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            self.add(layout.STAGING, "unreadable", "not a folder: a fetch never writes this")
            return
        if interrupted_commit(self.root):
            self.add(layout.STAGING, "interrupted", "a fetch was stopped while it put its "
                     "new files in place: run the same airgap fetch again to finish it")
            return
        files, size = pending(self.root)
        if files:
            self.warnings.append(f"an unfinished fetch left {files} files "
                                 f"({human_size(size)}) in {layout.STAGING}/: they are not "
                                 "part of this bundle; the same fetch run again goes on "
                                 f"with them, or delete {layout.STAGING}/ before carrying "
                                 "the bundle")

    def sums(self) -> dict[str, str]:
        path = self.root / layout.SUMS
        if layout.SUMS not in self.regular:
            if not path.is_symlink():
                self.add(layout.SUMS, "missing", "the bundle has no SHA512SUMS: its fetch did "
                                                 "not finish; run airgap fetch again")
            return {}
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            self.add(layout.SUMS, "unreadable", f"cannot be read: {exc.strerror}")
            return {}
        entries, problems = parse_sums(text)
        for message in problems:
            self.add(layout.SUMS, "sums", message)
        for listed in entries:
            try:
                layout.inside(self.root, listed)
            except AirgapError as exc:
                self.add(listed, "sums", exc.message)
        return entries

    def measure(self, paths: list[str]) -> None:
        """Note the size of every file to hash (bundle.json's sizes are checked on them)."""
        linked = []
        for path in paths:
            try:
                found = (self.root / path).lstat()
            except OSError as exc:
                self.add(path, "unreadable", f"cannot be read: {exc.strerror}")
                continue
            self.sizes[path] = found.st_size
            if found.st_nlink > 1:
                linked.append(path)
        if linked:
            self.warnings.append(f"{len(linked)} file(s) have other hard links ({linked[0]}"
                                 f"{', ...' if len(linked) > 1 else ''}): they are checked as "
                                 "they are now, but a change made through another link "
                                 "changes the bundle")

    def hash_all(self, sums: Mapping[str, str], jobs: int, reporter: Reporter,
                 hashed: Mapping[str, Digests] | None = None) -> int:
        """Hash every measured file in parallel, biggest first; return the bytes checked.

        ``hashed``: the digests of files this process has just written, taken from the
        very bytes it wrote (``airgap join``); one stands for a re-read of its file when
        it has every digest asked for and the file on the disk has its size. Its digests
        are checked as a re-read's would be."""
        hashed = hashed or {}
        total = sum(self.sizes.values())
        reporter.task_started("hash", f"hashing {len(self.sizes)} files", total)

        def progress(count: int) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            reporter.task_advanced("hash", count)

        def one(path: str) -> None:
            blob = path.startswith(_BLOBS)
            sha256 = wants_sha256(path)
            known = hashed.get(path)
            if known is not None and known.size == self.sizes[path] and \
                    (known.sha256 is not None or not sha256):
                digests = known
                progress(known.size)
                with self._lock:
                    self.taken_as_written += 1
            else:
                try:
                    digests = hash_file(self.root / path, sha256=sha256, progress=progress)
                except OSError as exc:
                    self.add(path, "unreadable", f"cannot be read: {exc.strerror or exc}")
                    return
            with self._lock:
                self.digests[path] = digests.sha512
                if digests.sha256 is not None:
                    self.sha256[path] = digests.sha256
            if digests.sha512 != sums[path]:
                self.add(path, "modified", "its SHA-512 differs from SHA512SUMS")
            if blob and digests.sha256 != path.removeprefix(_BLOBS):
                self.add(path, "modified", "its sha256 differs from its blob name")

        map_in_threads(one, sorted(self.sizes, key=self.sizes.__getitem__, reverse=True), jobs,
                       self.stop)
        reporter.task_finished("hash", "done")
        return total

    def description(self, sums: Mapping[str, str]) -> BundleDescription | None:
        """bundle.json, checked against SHA512SUMS and the files."""
        try:
            description = read_description(self.root)
        except BundleError as exc:
            self.add(layout.DESCRIPTION, "description", exc.message)
            return None
        items = description.items_by_path
        if description.delta is not None:
            self._delta(description)
        for path, item in items.items():
            if path in self.from_base:
                if path in sums:
                    self.add(path, "description", "bundle.json leaves it to the base, but "
                                                  "SHA512SUMS lists it")
            elif path not in sums:
                self.add(path, "description", "in bundle.json but not in SHA512SUMS")
            elif item.sha512 != sums[path]:
                self.add(path, "description", "bundle.json and SHA512SUMS disagree on its SHA-512")
            elif path in self.sizes and item.size != self.sizes[path]:
                self.add(path, "description", "its size differs from bundle.json")
            expected = layout.kind_of(path)
            if expected is not None and item.kind != expected:
                self.add(path, "description", f"bundle.json calls it {item.kind!r}, but "
                                              f"where it lies makes it {expected!r}")
        for path in set(sums) - set(items) - {layout.DESCRIPTION}:
            self.add(path, "description", "in SHA512SUMS but not in bundle.json")
        self.described = description
        return description

    def companions(self) -> None:
        """Every ``.asc``/``.sha512`` under downloads/ and ``.sig`` under packages/ must be
        that of a file the bundle holds (or a delta's base): a fetch never leaves one
        alone, and nothing vouches for one (``load --artifacts`` would serve it)."""
        for path in sorted(self.regular):
            owner = layout.signed_by(path)
            if owner is None:
                continue
            if layout.signature_for(owner) is None:
                self.add(path, "orphan", f"a signature or checksum of {Path(owner).name}, "
                         "which is no file that carries one: a fetch never writes it, and "
                         "nothing vouches for it")
            elif owner not in self.regular and owner not in self.from_base:
                self.add(path, "orphan", f"a signature or checksum of {Path(owner).name}, "
                         "which the bundle does not hold: a fetch never leaves one alone, "
                         "and nothing vouches for it")

    def _delta(self, description: BundleDescription) -> None:
        """A delta: which files its base holds, and whether its description makes the
        bundle it names."""
        assert description.delta is not None
        self.delta_of = description.delta.base
        self.from_base = {i.path for i in description.items if i.origin == "base"}
        _text, sums = target_files(description)
        if identity(sums.encode()) != description.delta.target:
            self.add(layout.DESCRIPTION, "description", "this delta's description does not "
                     "make the bundle it names as its target")

    def signatures(self, verifier: Verifier, description: BundleDescription | None,
                   jobs: int, outside: set[str], vouched: bool,
                   reporter: Reporter) -> int:
        """Re-check keys/ and every signature offline; return how many verified by a key
        something from outside vouches for (``outside``, or keys/ when ``vouched``)."""
        recorded = {k.fingerprint for k in description.keys} if description else set()
        items = description.items_by_path if description else {}
        trusted, self.unvouched_keys = recorded_keys(self.root, self.regular, verifier, recorded,
                                                     outside, vouched, self.add)
        wanted = must_be_signed(self.regular, items, self.add)
        # Outside the scope, a signer nothing vouches for is no problem: those files are
        # counted in the phase's summary, not listed one by one as if they had failed.
        listed = sum(1 for s in wanted if s.path.split("/", 1)[0] in self.scope)
        reporter.phase_started("signatures", f"checking {len(wanted)} signatures",
                               items=listed)

        def one(signed: Signed) -> str:
            in_scope = signed.path.split("/", 1)[0] in self.scope
            if in_scope:
                reporter.task_started(signed.signature, signed.signature, None,
                                      phase="signatures")
            outcome = self._signed_item(verifier, trusted, signed)
            if in_scope or outcome == "failed":
                if not in_scope:
                    reporter.task_started(signed.signature, signed.signature, None,
                                          phase="signatures")
                reporter.task_finished(signed.signature, outcome)
            return outcome

        outcomes = map_in_threads(one, wanted, jobs, self.stop)
        count = outcomes.count("verified")
        self.not_vouched = sum(1 for s, outcome in zip(wanted, outcomes, strict=True)
                               if outcome == "unvouched" and
                               s.path.split("/", 1)[0] not in self.scope)
        summary = f"{count} of {len(wanted)} good"
        if self.not_vouched:
            others = len(wanted) - self.not_vouched
            summary = (f"{self.not_vouched} checked, signer not vouched for (give "
                       f"{setting('trust_keys')} to check)"
                       + (f"; {count} of {others} others good" if others else ""))
        reporter.phase_finished("signatures", summary)
        return count

    def _signed_item(self, verifier: Verifier, trusted: set[str], signed: Signed) -> str:
        """Check one file's signature (and Elastic checksum): ``verified`` when a trusted
        key made it, ``unvouched`` when a key nothing from outside vouches for did, else
        ``failed``."""
        if self.stop.is_set():
            raise KeyboardInterrupt
        path, signature, item = signed.path, signed.signature, signed.item
        elastic_checksum(self.root, self.regular, self.from_base,
                         self.digests.get(path) or (item.sha512 if item is not None else None),
                         path, item, self.add)
        if signature not in self.regular and signature in self.from_base:
            return "left to the base"  # a delta's: checked with its base, by airgap merge
        if signature not in self.regular:
            self.add(signature, "signature", f"the signature of {Path(path).name} is missing: "
                                             "it cannot be shown to come from its publisher")
            return "failed"
        try:
            key = verifier.verify(self.root / path, layout.inside(self.root, signature),
                                  name=path)
        except AirgapError as exc:
            self.add(signature, "signature", exc.message)
            return "failed"
        recorded_signer = item.verification.signer if item is not None else None
        if key.fingerprint in self.unvouched_keys:
            if path.split("/", 1)[0] in self.scope:
                self.add(path, "unvouched", unvouched_signer(key, self.regular))
            return "unvouched"
        if key.fingerprint not in trusted:
            self.add(signature, "signature", f"made by {key.fingerprint}, which keys/ and "
                                             "bundle.json do not both vouch for")
            return "failed"
        if item is not None and recorded_signer is None:
            self.add(path, "description", "bundle.json records no signer for it")
        elif item is not None and key.fingerprint != recorded_signer:
            self.add(signature, "signature", f"made by {key.fingerprint}, but bundle.json "
                                             f"records {recorded_signer}")
        return "verified"
