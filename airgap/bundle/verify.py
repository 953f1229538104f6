"""``airgap verify``: prove, offline, that a bundle is exactly what was fetched, and that
something from outside it vouches for every file that leaves it.

Every file is hashed again (in parallel) against SHA512SUMS, and image blobs against
their sha256 names; missing, modified, unlisted and unreadable files, and anything that
is not a regular file (a symbolic link is never followed), are reported. bundle.json must
exist and agree with SHA512SUMS and with the files; keys/ must hold exactly the keys it
records. Which files must be signed is decided from where they lie (every artifact under
downloads/ needs its ``.asc``, every package zip its ``.sig``) as well as from bundle.json,
which nobody signs; each signature is checked again.

The isolated side trusts only what it is told from outside the bundle (docs/security.md):
the Elastic key pinned in airgap (never the bundle's copy of it), the signer keys the
user names (``trust_signers``), and the operator keys that must have signed SHA512SUMS
(``trust_keys``). A signer key that travels in keys/ counts only when SHA512SUMS.asc is
valid by a ``trust_keys`` key (the operator vouches for the whole bundle) or when the user
names it; the image, which Elastic does not sign, only with SHA512SUMS.asc. A file in
``scope`` that nothing from outside vouches for is a problem (``unvouched``) naming the
setting that would trust it. A tailored registry's packages layer must hold exactly the
bundle's verified packages (:mod:`airgap.bundle.tailored`); the image it ends is still
vouched for only by SHA512SUMS.asc, like any image. Every problem is listed. A delta is
checked for what it carries: the files it leaves to its base, and the signatures and
checksums that pair one of those with a carried file, are checked when it is merged
(``airgap merge``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap.bundle import defend, layout
from airgap.bundle.delta import identity, target_files
from airgap.bundle.description import (
    BundleDescription,
    Item,
    read_description,
    refuse_not_a_bundle,
)
from airgap.bundle.lock import refuse_while_written
from airgap.bundle.scan import scan
from airgap.bundle.staging import interrupted_commit, pending
from airgap.bundle.sums import parse_sums
from airgap.bundle.tailored import check_tailored
from airgap.bundle.vouch import (
    IMAGE_INDEX,
    UNSIGNED_AREAS,
    operator_signature,
    unvouched_area,
    unvouched_description,
    unvouched_image,
    unvouched_signer,
)
from airgap.errors import AirgapError, BundleError, VerificationError, setting
from airgap.reporter import Reporter
from airgap.threads import SidePool, map_in_threads
from airgap.trust.checksums import read_elastic_sha512
from airgap.trust.digests import hash_file
from airgap.trust.gpg import Verifier
from airgap.units import human_size

_BLOBS = f"{layout.IMAGES}/blobs/sha256/"
_DEFEND = f"{layout.SECURITY}/"
_SIGNED_KINDS = ("artifact", "package")
#: The folders whose files can leave the bundle: verify vouches for all of them.
EVERY_AREA = frozenset({layout.IMAGES, layout.DOWNLOADS, layout.PACKAGES, layout.SECURITY,
                        layout.TOOLS})


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
    trust_signers: tuple[Path, ...] = ()
    #: The folders whose files must be vouched for from outside (what leaves the bundle),
    #: and ``bundle.json`` when what it says does (``load --config``).
    scope: frozenset[str] = EVERY_AREA
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)


def carry_scope(trust_keys: tuple[Path, ...]) -> frozenset[str]:
    """What ``airgap merge`` and ``airgap join`` check the vouching of: every area when the
    user named an operator key (``trust_keys``), none otherwise. They make a bundle and take
    nothing out of it, so without one they prove only that nothing was lost or altered
    (signer keys they are given are used all the same); ``load``, ``export-image`` and
    ``verify`` prove who vouches for what leaves."""
    return EVERY_AREA if trust_keys else frozenset()


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
    #: Valid signatures outside the scope by a signer nothing from outside vouches for.
    not_vouched: int = 0
    layer_packages: int = 0  # a tailored registry's: the zips its packages layer matched

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        """What was checked, without the problems and warnings (the ``--json`` result)."""
        return {"bundle": str(self.bundle), "ok": self.ok, "files": self.files,
                "bytes": self.size, "signatures": self.signatures,
                "operator_signature": self.operator_signature, "delta_of": self.delta_of,
                "signatures_not_vouched": self.not_vouched,
                "layer_packages": self.layer_packages}

    def to_dict(self) -> dict[str, Any]:
        """Everything, problems and warnings included."""
        return {**self.summary(), "problems": [p.to_dict() for p in self.problems],
                "warnings": list(self.warnings)}


class BundleRefused(VerificationError):
    """The bundle failed verification, so nothing was taken out of it; ``report`` says how."""

    def __init__(self, report: VerifyReport, done: str = "nothing was loaded") -> None:
        super().__init__(f"{report.bundle} failed verification: {done}",
                         details=[f"{p.path}: {p.message}" for p in report.problems[:20]])
        self.report = report


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
    refuse_not_a_bundle(root)
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

    def signed(verifier: Verifier, outside: set[str], vouched: bool) -> int:
        if layout.SUMS not in found.regular:
            return 0
        description = None
        if layout.DESCRIPTION in found.regular:
            description = check.description(sums)
        elif layout.DESCRIPTION not in sums:
            check.add(layout.DESCRIPTION, "description", "the bundle has no bundle.json, and "
                      "SHA512SUMS does not list one: it was removed after the fetch")
        count = check.signatures(verifier, description, settings.jobs, outside, vouched,
                                 reporter)
        if description is not None and layout.IMAGES in settings.scope:
            # a tailored registry: its packages layer, member by member (a delta's, when it
            # carries the layer, against the target's files: its base holds some zips)
            layer = description.image.tailored.layer if description.image.tailored else ""
            target = {i.path: i.sha512 for i in description.items
                      if i.origin == "base"} if description.delta is not None else {}
            if f"{layout.IMAGES}/blobs/sha256/{layer.removeprefix('sha256:')}" \
                    not in check.from_base:
                check.layer_packages = check_tailored(root, description, {**target, **sums},
                                                      check.add, check.stop)
        return count

    # Whether the operator vouches for the whole bundle decides which of keys/ count:
    # known before any signature is checked.
    operator = operator_signature(root, found.regular, settings.trust_keys, check.add)
    vouched = operator == "valid"
    if not vouched and layout.IMAGES in settings.scope and IMAGE_INDEX in found.regular:
        check.add(IMAGE_INDEX, "unvouched", unvouched_image(found.regular))
    for area in UNSIGNED_AREAS:
        if not vouched and area in settings.scope and \
                any(path.startswith(f"{area}/") for path in found.regular):
            check.add(f"{area}/", "unvouched", unvouched_area(area, found.regular))
    # Only load --config takes bundle.json's word out of the bundle (not in EVERY_AREA).
    if not vouched and layout.DESCRIPTION in settings.scope and \
            layout.DESCRIPTION in found.regular:
        check.add(layout.DESCRIPTION, "unvouched", unvouched_description(found.regular))
    # GnuPG re-reads the signed files in processes of its own: let it run while the
    # files are hashed, so neither phase waits for the other's last, largest file. The
    # GnuPG home belongs to this thread, so that it is removed even when a Ctrl-C leaves
    # the side thread behind. It holds the pinned Elastic key and the signers the user
    # named: the keys from outside.
    with Verifier(settings.trust_signers) as verifier:
        outside = set(verifier.keys)
        check.scope = settings.scope
        with SidePool("airgap-signatures", on_failure=check.stop.set) as side:
            signatures_done = side.submit(signed, verifier, outside, vouched)
            size = check.hash_all(sums, settings.jobs, reporter)
        signatures = signatures_done.result()
    check.companions()
    if check.described is not None:  # Defend's artifacts: as their manifests say, and fresh
        # A delta's manifests left to the base are checked by merge; its artifacts left
        # to the base are there for the manifests it carries.
        carried = dataclasses.replace(check.described, defend=tuple(
            r for r in check.described.defend if r.path not in check.from_base))
        check.warnings.extend(defend.check_bundle(
            root, carried, found.regular | check.from_base, check.sizes, check.sha256,
            check.add))
        check.warnings.extend(defend.stale_warnings(check.described))
    return VerifyReport(root, len(listed), size, signatures,
                        tuple(sorted(check.problems, key=lambda p: (p.path, p.kind))),
                        tuple(check.warnings), operator, check.delta_of, check.not_vouched,
                        check.layer_packages)


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
        trusted = self._keys(verifier, recorded, outside, vouched)
        wanted = self._must_be_signed(items)
        # Outside the scope, a signer nothing vouches for is no problem: those files are
        # counted in the phase's summary, not listed one by one as if they had failed.
        listed = sum(1 for s in wanted if s.path.split("/", 1)[0] in self.scope)
        reporter.phase_started("signatures", f"checking {len(wanted)} signatures",
                               items=listed)

        def one(signed: _Signed) -> str:
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

    def _keys(self, verifier: Verifier, recorded: set[str], outside: set[str], vouched: bool
              ) -> set[str]:
        """The recorded keys whose files hold exactly them and that something from outside
        vouches for: those in ``outside`` (the pinned Elastic key, the signers the user
        named: never their bundle copies) and, when the operator's signature is valid
        (``vouched``), the others too."""
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
                found = verifier.fingerprints_in(self.root / path)
            except AirgapError as exc:
                self.add(path, "keys", exc.message)
                continue
            if found != [fingerprint]:
                self.add(path, "keys", f"holds {', '.join(found)}, not the recorded key "
                                       f"{fingerprint}: keys/ was swapped")
                continue
            if fingerprint in outside:
                trusted.add(fingerprint)  # the copy from outside is the one used
                continue
            try:  # so that its signatures are recognised, trusted or not
                verifier.add_key_file(self.root / path)
            except AirgapError as exc:
                self.add(path, "keys", exc.message)
                continue
            if vouched:
                trusted.add(fingerprint)
            else:
                self.unvouched_keys.add(fingerprint)
        return trusted

    def _signed_item(self, verifier: Verifier, trusted: set[str], signed: _Signed) -> str:
        """Check one file's signature (and Elastic checksum): ``verified`` when a trusted
        key made it, ``unvouched`` when a key nothing from outside vouches for did, else
        ``failed``."""
        if self.stop.is_set():
            raise KeyboardInterrupt
        path, signature, item = signed.path, signed.signature, signed.item
        self._elastic_checksum(path, item)
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
