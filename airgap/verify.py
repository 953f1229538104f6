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
leaves unproven. Every problem is listed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap import bundle, elastic, layout
from airgap.checksums import read_elastic_sha512
from airgap.digests import hash_file
from airgap.errors import AirgapError, BundleError
from airgap.reporter import Reporter
from airgap.signatures import Verifier
from airgap.threads import abandon, map_in_threads, wait_all

_BLOBS = f"{bundle.IMAGES}/blobs/sha256/"
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
    item: Mapping[str, Any] | None


def verify_bundle(settings: VerifySettings, reporter: Reporter) -> VerifyReport:
    """Check the bundle at ``settings.bundle``; never raises for what it finds wrong."""
    root = settings.bundle
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle directory")
    found = layout.scan(root)
    check = _Check(root, found.regular)
    for odd in found.odd:
        check.add(odd.path, odd.kind, odd.message)
    sums = check.sums()
    for path in sorted(found.regular - set(sums) - bundle.NOT_SUMMED):
        check.add(path, "unlisted", "not in SHA512SUMS: added after the fetch")
    for path in sorted(set(sums) - found.entries):
        check.add(path, "missing", "listed in SHA512SUMS but not in the bundle")
    listed = [p for p in sums if p in found.regular]
    check.measure(listed)

    def signed(verifier: Verifier) -> int:
        if bundle.SUMS not in found.regular:
            return 0
        document: Mapping[str, Any] = {}
        if bundle.DESCRIPTION in found.regular:
            document = check.description(sums) or {}
        elif bundle.DESCRIPTION not in sums:
            check.add(bundle.DESCRIPTION, "description", "the bundle has no bundle.json, and "
                      "SHA512SUMS does not list one: it was removed after the fetch")
        return check.signatures(verifier, document, settings.jobs)

    # GnuPG re-reads the signed files in processes of its own: let it run while the
    # files are hashed, so neither phase waits for the other's last, largest file. The
    # GnuPG home belongs to this thread, so that it is removed even when a Ctrl-C leaves
    # the side thread behind.
    with Verifier() as verifier:
        side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airgap-signatures")
        signatures_done = side.submit(signed, verifier)
        try:
            size = check.hash_all(sums, settings.jobs, reporter)
            wait_all([signatures_done])
        except BaseException:
            check.stop.set()
            abandon(side, [signatures_done])
            raise
        side.shutdown()
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
                "with --trust-key: a bundle rewritten whole would pass; sign it at fetch time "
                "(--sign-with) and verify with --trust-key")
    return ("no operator signature was checked with --trust-key: the image is not signed by "
            "Elastic, only named by SHA512SUMS and bundle.json, so a bundle rewritten whole "
            "(image blobs, SHA512SUMS and bundle.json) would pass; sign it at fetch time "
            "(--sign-with) and verify with --trust-key")


def _dicts(document: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = document.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _verification(item: Mapping[str, Any] | None) -> Mapping[str, Any]:
    value = item.get("verification") if item is not None else None
    return value if isinstance(value, dict) else {}


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
        path = self.root / bundle.SUMS
        if bundle.SUMS not in self.regular:
            if not path.is_symlink():
                self.add(bundle.SUMS, "missing", "the bundle has no SHA512SUMS: its fetch did "
                                                 "not finish; run airgap fetch again")
            return {}
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            self.add(bundle.SUMS, "unreadable", f"cannot be read: {exc.strerror}")
            return {}
        entries, problems = bundle.parse_sums(text)
        for message in problems:
            self.add(bundle.SUMS, "sums", message)
        for listed in entries:
            try:
                bundle.inside(self.root, listed)
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

    def description(self, sums: Mapping[str, str]) -> dict[str, Any] | None:
        """bundle.json, checked against SHA512SUMS and the files."""
        try:
            document = bundle.read_description(self.root)
        except BundleError as exc:
            self.add(bundle.DESCRIPTION, "description", exc.message)
            return None
        for key in ("items", "keys"):
            if not isinstance(document.get(key), list):
                self.add(bundle.DESCRIPTION, "description", f"its {key!r} is not a list")
        items = {str(i.get("path")): i for i in _dicts(document, "items")}
        for path, item in items.items():
            if path not in sums:
                self.add(path, "description", "in bundle.json but not in SHA512SUMS")
            elif item.get("sha512") != sums[path]:
                self.add(path, "description", "bundle.json and SHA512SUMS disagree on its SHA-512")
            elif path in self.sizes and item.get("size") != self.sizes[path]:
                self.add(path, "description", "its size differs from bundle.json")
            expected = layout.kind_of(path)
            if expected is not None and item.get("kind") != expected:
                self.add(path, "description", f"bundle.json calls it {item.get('kind')!r}, but "
                                              f"where it lies makes it {expected!r}")
        for path in set(sums) - set(items) - {bundle.DESCRIPTION}:
            self.add(path, "description", "in SHA512SUMS but not in bundle.json")
        return document

    def signatures(self, verifier: Verifier, document: Mapping[str, Any], jobs: int) -> int:
        """Re-check keys/ and every signature offline; return how many verified."""
        recorded = {str(k.get("fingerprint")): k for k in _dicts(document, "keys")}
        items = {str(i.get("path")): i for i in _dicts(document, "items")}
        trusted = self._keys(verifier, recorded)

        def one(signed: _Signed) -> bool:
            return self._signed_item(verifier, trusted, signed)

        return sum(map_in_threads(one, self._must_be_signed(items), jobs, self.stop))

    def _must_be_signed(self, items: Mapping[str, Mapping[str, Any]]) -> list[_Signed]:
        """Every file the layout or bundle.json says is signed, with its signature's path."""
        wanted: dict[str, _Signed] = {}
        for path in sorted(self.regular):
            signature = layout.signature_for(path)
            if signature is not None:
                wanted[path] = _Signed(path, signature, items.get(path))
        for path, item in items.items():
            recorded = str(_verification(item).get("signature") or "")
            if path in wanted:
                if recorded and recorded != wanted[path].signature:
                    self.add(path, "description", f"bundle.json names {recorded} as its "
                                                  f"signature, not {wanted[path].signature}")
            elif item.get("kind") in _SIGNED_KINDS and path in self.regular:
                if not recorded:
                    self.add(path, "description", "bundle.json names no signature for it")
                else:
                    wanted[path] = _Signed(path, recorded, item)
        return list(wanted.values())

    def _keys(self, verifier: Verifier, recorded: Mapping[str, Mapping[str, Any]]) -> set[str]:
        """Trust the recorded keys whose files hold exactly them; Elastic's from airgap."""
        trusted = set()
        prefix = f"{bundle.KEYS}/"
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
            key = verifier.verify(self.root / path, bundle.inside(self.root, signature),
                                  name=path)
        except AirgapError as exc:
            self.add(signature, "signature", exc.message)
            return False
        recorded_signer = _verification(item).get("signer")
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

    def _elastic_checksum(self, path: str, item: Mapping[str, Any] | None) -> None:
        """An artifact's ``.sha512`` (which agents download too) must name and match it."""
        checksum = layout.checksum_for(path)
        if checksum is None and item is not None and item.get("kind") == "artifact":
            checksum = str(_verification(item).get("checksum") or "") or None
        if checksum is None:
            return
        if checksum not in self.regular:
            self.add(checksum, "missing", f"the Elastic checksum of {Path(path).name} is "
                                          "missing: agents download it to check the file")
            return
        actual = self.digests.get(path) or (item or {}).get("sha512")
        if actual is None:
            return  # the file itself could not be read: already reported
        try:
            expected = read_elastic_sha512(bundle.inside(self.root, checksum), Path(path).name)
        except (AirgapError, OSError) as exc:
            self.add(checksum, "signature", str(exc))
            return
        if expected != actual:
            self.add(checksum, "modified", f"does not match {Path(path).name}")

    def operator_signature(self, trust_keys: Iterable[Path]) -> str:
        keys = list(trust_keys)
        if bundle.SUMS_SIGNATURE not in self.regular:
            if keys:
                self.add(bundle.SUMS_SIGNATURE, "operator-signature",
                         "--trust-key was given but the bundle has no SHA512SUMS.asc")
            return "absent"
        if not keys:
            return "present, not checked (give --trust-key)"
        if bundle.SUMS not in self.regular:
            self.add(bundle.SUMS_SIGNATURE, "operator-signature", "there is no SHA512SUMS "
                                                                  "for it to sign")
            return "invalid"
        try:
            with Verifier(keys, include_elastic=False) as verifier:
                verifier.verify(self.root / bundle.SUMS, self.root / bundle.SUMS_SIGNATURE,
                                name=bundle.SUMS)
        except AirgapError as exc:
            self.add(bundle.SUMS_SIGNATURE, "operator-signature", exc.message)
            return "invalid"
        return "valid"
