"""``airgap verify``: prove, offline, that a bundle is exactly what was fetched.

Every file is hashed again (in parallel) against SHA512SUMS, and image blobs against
their sha256 names; missing, modified, unlisted and unreadable files, and anything that
is not a regular file (a symbolic link is never followed), are reported. bundle.json must
exist and agree with SHA512SUMS and with the files; keys/ must hold exactly the keys it
records. Which files must be signed is decided from where they lie (every artifact under
downloads/ needs its ``.asc``, every package zip its ``.sig``) as well as from bundle.json,
which nobody signs; each signature is checked again, with the Elastic key pinned in airgap
(never the bundle's copy of it) and the other recorded keys. With ``--trust-key``, the
operator's signature of SHA512SUMS must be valid; without it, a warning says what that
leaves unproven. Every problem is listed. A delta is checked for what it carries: the
files it leaves to its base, and the signatures and checksums that pair one of those
with a carried file, are checked when it is merged (``airgap merge``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap import elastic
from airgap.bundle import defend, layout
from airgap.bundle.delta import identity, target_files
from airgap.bundle.description import BundleDescription, Item, read_description
from airgap.bundle.lock import refuse_while_written
from airgap.bundle.scan import scan
from airgap.bundle.staging import interrupted_commit, pending
from airgap.bundle.sums import parse_sums
from airgap.errors import AirgapError, BundleError, UsageError, setting
from airgap.reporter import Reporter
from airgap.threads import SidePool, map_in_threads
from airgap.trust.checksums import read_elastic_sha512
from airgap.trust.digests import hash_file
from airgap.trust.gpg import Verifier
from airgap.units import human_size

_BLOBS = f"{layout.IMAGES}/blobs/sha256/"
#: What makes a folder a bundle, complete or in the making.
_MARKS = (layout.SUMS, layout.DESCRIPTION, layout.LOCK, layout.STAGING)
_DEFEND = f"{layout.SECURITY}/"
_TRUST = setting("trust_keys")
_SIGN = setting("sign_with")
_SIGNED_KINDS = ("artifact", "package")


class NotABundle(UsageError):
    """The folder given is no bundle at all."""


@dataclass(frozen=True)
class Problem:
    """Something wrong with the bundle: which file, what kind, and what exactly."""

    path: str
    kind: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class VerifySettings:
    """What ``airgap verify`` was asked to do."""

    bundle: Path
    trust_keys: tuple[Path, ...] = ()
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)


@dataclass(frozen=True)
class VerifyReport:
    """The outcome: intact when there is no problem."""

    bundle: Path
    files: int
    size: int
    signatures: int
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...]
    operator_signature: str
    delta_of: str | None = None  # a delta: the identity of its base

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        """What was checked, without the problems and warnings (the ``--json`` result)."""
        return {"bundle": str(self.bundle), "ok": self.ok, "files": self.files,
                "bytes": self.size, "signatures": self.signatures,
                "operator_signature": self.operator_signature, "delta_of": self.delta_of}

    def to_dict(self) -> dict[str, Any]:
        """Everything, problems and warnings included."""
        return {**self.summary(), "problems": [p.to_dict() for p in self.problems],
                "warnings": list(self.warnings)}


@dataclass(frozen=True)
class _Signed:
    """A file that must be signed, where its signature must be, and how bundle.json
    describes it (None when it does not)."""

    path: str
    signature: str
    item: Item | None


def verify_bundle(settings: VerifySettings, reporter: Reporter) -> VerifyReport:
    """Check the bundle at ``settings.bundle``; never raises for what it finds wrong."""
    root = settings.bundle
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle directory")
    refuse_while_written(root)
    if not any((root / name).exists() for name in _MARKS):
        raise NotABundle(f"{root} is not an airgap bundle: it has none of "
                         f"{', '.join(_MARKS)}",
                         details=["give the folder `airgap fetch -o` wrote"])
    found = scan(root, skip=frozenset({layout.STAGING}))
    check = _Check(root, found.regular)
    for odd in found.odd:
        check.add(odd.path, odd.kind, odd.message)
    check.staging()
    sums = check.sums()
    for path in sorted(found.regular - set(sums) - layout.NOT_SUMMED):
        check.add(path, "unlisted", "not in SHA512SUMS: added after the fetch")
    for path in sorted(set(sums) - found.entries):
        check.add(path, "missing", "listed in SHA512SUMS but not in the bundle")
    listed = [p for p in sums if p in found.regular]
    check.measure(listed)

    def signed(verifier: Verifier) -> int:
        if layout.SUMS not in found.regular:
            return 0
        description = None
        if layout.DESCRIPTION in found.regular:
            description = check.description(sums)
        elif layout.DESCRIPTION not in sums:
            check.add(layout.DESCRIPTION, "description", "the bundle has no bundle.json, and "
                      "SHA512SUMS does not list one: it was removed after the fetch")
        return check.signatures(verifier, description, settings.jobs, reporter)

    # GnuPG re-reads the signed files in processes of its own: let it run while the
    # files are hashed, so neither phase waits for the other's last, largest file. The
    # GnuPG home belongs to this thread, so that it is removed even when a Ctrl-C leaves
    # the side thread behind.
    with Verifier() as verifier:
        with SidePool("airgap-signatures", on_failure=check.stop.set) as side:
            signatures_done = side.submit(signed, verifier)
            size = check.hash_all(sums, settings.jobs, reporter)
        signatures = signatures_done.result()
    if check.described is not None:  # Defend's artifacts: as their manifests say, and fresh
        # A delta's manifests left to the base are checked by merge; its artifacts left
        # to the base are there for the manifests it carries.
        carried = dataclasses.replace(check.described, defend=tuple(
            r for r in check.described.defend if r.path not in check.from_base))
        defend.check_bundle(root, carried, found.regular | check.from_base, check.sizes,
                            check.sha256, check.add)
        check.warnings.extend(defend.stale_warnings(check.described))
    operator = check.operator_signature(settings.trust_keys)
    if not settings.trust_keys:
        check.warnings.append(_unsigned_warning(check.foreign_keys))
    return VerifyReport(root, len(listed), size, signatures,
                        tuple(sorted(check.problems, key=lambda p: (p.path, p.kind))),
                        tuple(check.warnings), operator, check.delta_of)


def _unsigned_warning(foreign_keys: Iterable[str]) -> str:
    """What a check without ``--trust-key`` cannot prove."""
    foreign = list(foreign_keys)
    if foreign:
        return ("this bundle was verified with keys other than the Elastic key pinned in "
                f"airgap ({', '.join(foreign)}) and carries no operator signature checked "
                f"with {_TRUST}: a bundle rewritten whole would pass; sign it at fetch time "
                f"({_SIGN}) and verify with {_TRUST}")
    return (f"no operator signature was checked with {_TRUST}: the image is not signed by "
            "Elastic, only named by SHA512SUMS and bundle.json, so a bundle rewritten whole "
            "(image blobs, SHA512SUMS and bundle.json) would pass; sign it at fetch time "
            f"({_SIGN}) and verify with {_TRUST}")


class _Check:
    """Collects problems while it checks one bundle."""

    def __init__(self, root: Path, regular: set[str]) -> None:
        self.root = root
        self.regular = regular
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.digests: dict[str, str] = {}
        self.sha256: dict[str, str] = {}  # of image blobs and Defend's artifacts
        self.sizes: dict[str, int] = {}
        self.described: BundleDescription | None = None
        self.foreign_keys: list[str] = []
        self.from_base: set[str] = set()  # a delta's files that its base holds
        self.delta_of: str | None = None
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
        for path in paths:
            try:
                self.sizes[path] = (self.root / path).lstat().st_size
            except OSError as exc:
                self.add(path, "unreadable", f"cannot be read: {exc.strerror}")

    def hash_all(self, sums: Mapping[str, str], jobs: int, reporter: Reporter) -> int:
        """Hash every measured file in parallel, biggest first; return the bytes read."""
        total = sum(self.sizes.values())
        reporter.task_started("hash", f"hashing {len(self.sizes)} files", total)

        def progress(count: int) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            reporter.task_advanced("hash", count)

        def one(path: str) -> None:
            blob = path.startswith(_BLOBS)
            try:
                digests = hash_file(self.root / path, sha256=blob or path.startswith(_DEFEND),
                                    progress=progress)
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
                   jobs: int, reporter: Reporter) -> int:
        """Re-check keys/ and every signature offline; return how many verified."""
        recorded = {k.fingerprint for k in description.keys} if description else set()
        items = description.items_by_path if description else {}
        trusted = self._keys(verifier, recorded)
        wanted = self._must_be_signed(items)
        reporter.phase_started("signatures", f"checking {len(wanted)} signatures",
                               items=len(wanted))

        def one(signed: _Signed) -> bool:
            reporter.task_started(signed.signature, signed.signature, None,
                                  phase="signatures")
            good = self._signed_item(verifier, trusted, signed)
            reporter.task_finished(signed.signature, "verified" if good else "failed")
            return good

        count = sum(map_in_threads(one, wanted, jobs, self.stop))
        reporter.phase_finished("signatures", f"{count} of {len(wanted)} good")
        return count

    def _must_be_signed(self, items: Mapping[str, Item]) -> list[_Signed]:
        """Every file the layout or bundle.json says is signed, with its signature's path."""
        wanted: dict[str, _Signed] = {}
        for path in sorted(self.regular):
            signature = layout.signature_for(path)
            if signature is not None:
                wanted[path] = _Signed(path, signature, items.get(path))
        for path, item in items.items():
            recorded = item.verification.signature
            if path in wanted:
                if recorded and recorded != wanted[path].signature:
                    self.add(path, "description", f"bundle.json names {recorded} as its "
                                                  f"signature, not {wanted[path].signature}")
            elif item.kind in _SIGNED_KINDS and path in self.regular:
                if not recorded:
                    self.add(path, "description", "bundle.json names no signature for it")
                else:
                    wanted[path] = _Signed(path, recorded, item)
        return list(wanted.values())

    def _keys(self, verifier: Verifier, recorded: set[str]) -> set[str]:
        """Trust the recorded keys whose files hold exactly them; Elastic's from airgap."""
        trusted = set()
        prefix = f"{layout.KEYS}/"
        on_disk = {p.removeprefix(prefix) for p in self.regular
                   if p.startswith(prefix) and "/" not in p.removeprefix(prefix)}
        expected = {f"{fpr}.asc" for fpr in recorded}
        for name in sorted(on_disk - expected):
            self.add(f"{prefix}{name}", "keys", "a key bundle.json does not record")
        for fingerprint in recorded:
            path = f"{prefix}{fingerprint}.asc"
            if f"{fingerprint}.asc" not in on_disk:
                self.add(path, "keys", "a recorded key is missing")
                continue
            try:
                found = [k.fingerprint for k in verifier.add_key_file(self.root / path)]
            except AirgapError as exc:
                self.add(path, "keys", exc.message)
                continue
            if found != [fingerprint]:
                self.add(path, "keys", f"holds {', '.join(found)}, not the recorded key "
                                       f"{fingerprint}: keys/ was swapped")
                for other in found:
                    if other != elastic.ELASTIC_KEY_FINGERPRINT:
                        verifier.keys.pop(other, None)
                continue
            trusted.add(fingerprint)
            if fingerprint != elastic.ELASTIC_KEY_FINGERPRINT:
                self.foreign_keys.append(fingerprint[-16:])
        return trusted

    def _signed_item(self, verifier: Verifier, trusted: set[str], signed: _Signed) -> bool:
        """Check one file's signature (and Elastic checksum); whether a trusted key made it."""
        if self.stop.is_set():
            raise KeyboardInterrupt
        path, signature, item = signed.path, signed.signature, signed.item
        self._elastic_checksum(path, item)
        if signature not in self.regular and signature in self.from_base:
            return False  # a delta's: checked with its base, by airgap merge
        if signature not in self.regular:
            self.add(signature, "signature", f"the signature of {Path(path).name} is missing: "
                                             "it cannot be shown to come from its publisher")
            return False
        try:
            key = verifier.verify(self.root / path, layout.inside(self.root, signature),
                                  name=path)
        except AirgapError as exc:
            self.add(signature, "signature", exc.message)
            return False
        recorded_signer = item.verification.signer if item is not None else None
        if key.fingerprint not in trusted:
            self.add(signature, "signature", f"made by {key.fingerprint}, which keys/ and "
                                             "bundle.json do not both vouch for")
            return False
        if item is not None and recorded_signer is None:
            self.add(path, "description", "bundle.json records no signer for it")
        elif item is not None and key.fingerprint != recorded_signer:
            self.add(signature, "signature", f"made by {key.fingerprint}, but bundle.json "
                                             f"records {recorded_signer}")
        return True

    def _elastic_checksum(self, path: str, item: Item | None) -> None:
        """An artifact's ``.sha512`` (which agents download too) must name and match it."""
        checksum = layout.checksum_for(path)
        if checksum is None and item is not None and item.kind == "artifact":
            checksum = item.verification.checksum or None
        if checksum is None or (checksum not in self.regular and checksum in self.from_base):
            return
        if checksum not in self.regular:
            self.add(checksum, "missing", f"the Elastic checksum of {Path(path).name} is "
                                          "missing: agents download it to check the file")
            return
        actual = self.digests.get(path) or (item.sha512 if item is not None else None)
        if actual is None:
            return  # the file itself could not be read: already reported
        try:
            expected = read_elastic_sha512(layout.inside(self.root, checksum), Path(path).name)
        except (AirgapError, OSError) as exc:
            self.add(checksum, "signature", str(exc))
            return
        if expected != actual:
            self.add(checksum, "modified", f"does not match {Path(path).name}")

    def operator_signature(self, trust_keys: Iterable[Path]) -> str:
        keys = list(trust_keys)
        if layout.SUMS_SIGNATURE not in self.regular:
            if keys:
                self.add(layout.SUMS_SIGNATURE, "operator-signature",
                         f"{_TRUST} was given but the bundle has no SHA512SUMS.asc")
            return "absent"
        if not keys:
            return f"present, not checked (give {_TRUST})"
        if layout.SUMS not in self.regular:
            self.add(layout.SUMS_SIGNATURE, "operator-signature", "there is no SHA512SUMS "
                                                                  "for it to sign")
            return "invalid"
        try:
            with Verifier(keys, include_elastic=False) as verifier:
                verifier.verify(self.root / layout.SUMS, self.root / layout.SUMS_SIGNATURE,
                                name=layout.SUMS)
        except AirgapError as exc:
            self.add(layout.SUMS_SIGNATURE, "operator-signature", exc.message)
            return "invalid"
        return "valid"
