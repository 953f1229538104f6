"""``airgap verify``: prove, offline, that a bundle is exactly what was fetched.

Every file is hashed again (in parallel) against SHA512SUMS, and image blobs against
their sha256 names; missing, modified, unlisted and unreadable files, and anything that
is not a regular file (a symbolic link is never followed), are reported. bundle.json must
exist and agree with SHA512SUMS and with the files; keys/ must hold exactly the keys it
records. Which files must be signed is decided from where they lie (every artifact under
downloads/ needs its ``.asc``, every package zip its ``.sig``) as well as from bundle.json,
which nobody signs; each signature is checked again, with the Elastic key pinned in airgap
(never the bundle's copy of it) and the other recorded keys. A tailored registry's
packages layer must hold exactly those verified packages (:mod:`airgap.bundle.tailored`).
With ``--trust-key``, the operator's signature of SHA512SUMS must be valid; without it,
a warning says what that leaves unproven. Every problem is listed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap import elastic
from airgap.bundle import layout
from airgap.bundle.description import BundleDescription, Item, read_description
from airgap.bundle.scan import scan
from airgap.bundle.sums import parse_sums
from airgap.bundle.tailored import check_tailored
from airgap.errors import AirgapError, BundleError, setting
from airgap.reporter import Reporter
from airgap.threads import SidePool, map_in_threads
from airgap.trust.checksums import read_elastic_sha512
from airgap.trust.digests import hash_file
from airgap.trust.gpg import Verifier

_BLOBS = f"{layout.IMAGES}/blobs/sha256/"
_TRUST = setting("trust_keys")
_SIGN = setting("sign_with")
_SIGNED_KINDS = ("artifact", "package")


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

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {"bundle": str(self.bundle), "ok": self.ok, "files": self.files,
                "bytes": self.size, "signatures": self.signatures,
                "operator_signature": self.operator_signature,
                "problems": [p.to_dict() for p in self.problems],
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
    found = scan(root)
    check = _Check(root, found.regular)
    for odd in found.odd:
        check.add(odd.path, odd.kind, odd.message)
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
        count = check.signatures(verifier, description, settings.jobs)
        if description is not None:  # a tailored registry: its packages layer, member by member
            check_tailored(root, description, sums, check.add, check.stop)
        return count

    # GnuPG re-reads the signed files in processes of its own: let it run while the
    # files are hashed, so neither phase waits for the other's last, largest file. The
    # GnuPG home belongs to this thread, so that it is removed even when a Ctrl-C leaves
    # the side thread behind.
    with Verifier() as verifier:
        with SidePool("airgap-signatures", on_failure=check.stop.set) as side:
            signatures_done = side.submit(signed, verifier)
            size = check.hash_all(sums, settings.jobs, reporter)
        signatures = signatures_done.result()
    operator = check.operator_signature(settings.trust_keys)
    if not settings.trust_keys:
        check.warnings.append(_unsigned_warning(check.foreign_keys))
    return VerifyReport(root, len(listed), size, signatures,
                        tuple(sorted(check.problems, key=lambda p: (p.path, p.kind))),
                        tuple(check.warnings), operator)


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
        self.sizes: dict[str, int] = {}
        self.foreign_keys: list[str] = []
        self.stop = threading.Event()  # set on Ctrl-C: work in progress gives up
        self._lock = threading.Lock()

    def add(self, path: str, kind: str, message: str) -> None:
        with self._lock:
            self.problems.append(Problem(path, kind, message))

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
        reporter.task_started("verify", f"hashing {len(self.sizes)} files", total)

        def progress(count: int) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            reporter.task_advanced("verify", count)

        def one(path: str) -> None:
            blob = path.startswith(_BLOBS)
            try:
                digests = hash_file(self.root / path, sha256=blob, progress=progress)
            except OSError as exc:
                self.add(path, "unreadable", f"cannot be read: {exc.strerror or exc}")
                return
            with self._lock:
                self.digests[path] = digests.sha512
            if digests.sha512 != sums[path]:
                self.add(path, "modified", "its SHA-512 differs from SHA512SUMS")
            if blob and digests.sha256 != path.removeprefix(_BLOBS):
                self.add(path, "modified", "its sha256 differs from its blob name")

        map_in_threads(one, sorted(self.sizes, key=self.sizes.__getitem__, reverse=True), jobs,
                       self.stop)
        reporter.task_finished("verify", "done")
        return total

    def description(self, sums: Mapping[str, str]) -> BundleDescription | None:
        """bundle.json, checked against SHA512SUMS and the files."""
        try:
            description = read_description(self.root)
        except BundleError as exc:
            self.add(layout.DESCRIPTION, "description", exc.message)
            return None
        items = description.items_by_path
        for path, item in items.items():
            if path not in sums:
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
        return description

    def signatures(self, verifier: Verifier, description: BundleDescription | None,
                   jobs: int) -> int:
        """Re-check keys/ and every signature offline; return how many verified."""
        recorded = {k.fingerprint for k in description.keys} if description else set()
        items = description.items_by_path if description else {}
        trusted = self._keys(verifier, recorded)

        def one(signed: _Signed) -> bool:
            return self._signed_item(verifier, trusted, signed)

        return sum(map_in_threads(one, self._must_be_signed(items), jobs, self.stop))

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
        if checksum is None:
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
