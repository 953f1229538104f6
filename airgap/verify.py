"""``airgap verify``: prove, offline, that a bundle is exactly what was fetched.

Every file is hashed again (in parallel) against SHA512SUMS, and image blobs against
their sha256 names; missing, modified and unlisted files are reported. bundle.json must
agree with SHA512SUMS and with the files; keys/ must hold exactly the keys it records;
every ``.asc`` and ``.sig`` is checked again, with the Elastic key pinned in airgap (never
the bundle's copy of it) and the other recorded keys. With ``--trust-key``, the
operator's signature of SHA512SUMS must be valid. Every problem is listed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap import bundle, elastic
from airgap.checksums import read_elastic_sha512
from airgap.digests import hash_file
from airgap.errors import AirgapError, BundleError
from airgap.reporter import Reporter
from airgap.signatures import Verifier

_BLOBS = "images/blobs/sha256/"


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


def verify_bundle(settings: VerifySettings, reporter: Reporter) -> VerifyReport:
    """Check the bundle at ``settings.bundle``; never raises for what it finds wrong."""
    root = settings.bundle
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle directory")
    check = _Check(root)
    sums = check.sums()
    present = _files(root)
    for path in sorted(present - set(sums) - bundle.NOT_SUMMED):
        check.add(path, "unlisted", "not in SHA512SUMS: added after the fetch")
    listed = [p for p in sums if p in present]
    for path in sorted(set(sums) - present):
        check.add(path, "missing", "listed in SHA512SUMS but not in the bundle")
    size = check.hash_all(listed, sums, settings.jobs, reporter)
    signatures = 0
    if bundle.DESCRIPTION in sums and bundle.DESCRIPTION in present:
        description = check.description(sums)
        if description is not None:
            signatures = check.signatures(description, settings.jobs)
    operator = check.operator_signature(settings.trust_keys)
    if check.foreign_keys and operator != "valid":
        check.warnings.append(
            "this bundle was verified with keys other than the Elastic key pinned in airgap "
            f"({', '.join(check.foreign_keys)}) and carries no operator signature checked "
            "with --trust-key: a bundle rewritten whole would pass; sign it at fetch time "
            "(--sign-with) and verify with --trust-key")
    return VerifyReport(root, len(listed), size, signatures,
                        tuple(sorted(check.problems, key=lambda p: (p.path, p.kind))),
                        tuple(check.warnings), operator)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() or p.is_symlink()}


class _Check:
    """Collects problems while it checks one bundle."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.digests: dict[str, str] = {}
        self.foreign_keys: list[str] = []
        self._lock = threading.Lock()

    def add(self, path: str, kind: str, message: str) -> None:
        with self._lock:
            self.problems.append(Problem(path, kind, message))

    def sums(self) -> dict[str, str]:
        path = self.root / bundle.SUMS
        if not path.is_file():
            self.add(bundle.SUMS, "missing", "the bundle has no SHA512SUMS: its fetch did not "
                                             "finish; run airgap fetch again")
            return {}
        entries, problems = bundle.parse_sums(path.read_text(encoding="utf-8", errors="replace"))
        for message in problems:
            self.add(bundle.SUMS, "sums", message)
        for listed in entries:
            try:
                bundle.inside(self.root, listed)
            except AirgapError as exc:
                self.add(listed, "sums", exc.message)
        return entries

    def hash_all(self, paths: list[str], sums: Mapping[str, str], jobs: int,
                 reporter: Reporter) -> int:
        """Hash every file in parallel, biggest first; return the bytes read."""
        sizes = {p: (self.root / p).stat().st_size for p in paths}
        total = sum(sizes.values())
        reporter.task_started("verify", f"hashing {len(paths)} files", total)

        def one(path: str) -> None:
            blob = path.startswith(_BLOBS)
            digests = hash_file(self.root / path, sha256=blob,
                                progress=lambda n: reporter.task_advanced("verify", n))
            self.digests[path] = digests.sha512
            if digests.sha512 != sums[path]:
                self.add(path, "modified", "its SHA-512 differs from SHA512SUMS")
            if blob and digests.sha256 != path.removeprefix(_BLOBS):
                self.add(path, "modified", "its sha256 differs from its blob name")

        _run(one, sorted(paths, key=sizes.__getitem__, reverse=True), jobs)
        reporter.task_finished("verify", "done")
        return total

    def description(self, sums: Mapping[str, str]) -> dict[str, Any] | None:
        """bundle.json, checked against SHA512SUMS and the files."""
        try:
            document = bundle.read_description(self.root)
        except BundleError as exc:
            self.add(bundle.DESCRIPTION, "description", exc.message)
            return None
        items = {str(i.get("path")): i for i in document.get("items", []) if isinstance(i, dict)}
        for path, item in items.items():
            if path not in sums:
                self.add(path, "description", "in bundle.json but not in SHA512SUMS")
            elif item.get("sha512") != sums[path]:
                self.add(path, "description", "bundle.json and SHA512SUMS disagree on its SHA-512")
            elif (self.root / path).is_file() and item.get("size") != \
                    (self.root / path).stat().st_size:
                self.add(path, "description", "its size differs from bundle.json")
        for path in set(sums) - set(items) - {bundle.DESCRIPTION}:
            self.add(path, "description", "in SHA512SUMS but not in bundle.json")
        return document

    def signatures(self, document: Mapping[str, Any], jobs: int) -> int:
        """Re-check keys/ and every signature offline; return how many were checked."""
        recorded = {str(k.get("fingerprint")): k for k in document.get("keys", [])
                    if isinstance(k, dict)}
        with Verifier() as verifier:
            trusted = self._keys(verifier, recorded)
            items = [i for i in document.get("items", []) if isinstance(i, dict)]
            signed = [i for i in items if i.get("kind") in ("artifact", "package")]

            def one(item: Mapping[str, Any]) -> None:
                self._signed_item(verifier, trusted, item)

            _run(one, signed, jobs)
        return len(signed)

    def _keys(self, verifier: Verifier, recorded: Mapping[str, Mapping[str, Any]]) -> set[str]:
        """Trust the recorded keys whose files hold exactly them; Elastic's from airgap."""
        trusted = set()
        on_disk = {p.name for p in (self.root / bundle.KEYS).glob("*") if p.is_file()}
        expected = {f"{fpr}.asc" for fpr in recorded}
        for name in sorted(on_disk - expected):
            self.add(f"{bundle.KEYS}/{name}", "keys", "a key bundle.json does not record")
        for fingerprint in recorded:
            path = f"{bundle.KEYS}/{fingerprint}.asc"
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

    def _signed_item(self, verifier: Verifier, trusted: set[str],
                     item: Mapping[str, Any]) -> None:
        path = str(item.get("path"))
        verification = item.get("verification") or {}
        signature = str(verification.get("signature", ""))
        if not signature:
            self.add(path, "description", "bundle.json names no signature for it")
            return
        if not (self.root / path).is_file() or not (self.root / signature).is_file():
            return  # already reported missing
        try:
            key = verifier.verify(self.root / path, bundle.inside(self.root, signature),
                                  name=path)
        except AirgapError as exc:
            self.add(signature, "signature", exc.message)
            return
        recorded_signer = verification.get("signer")
        if key.fingerprint not in trusted:
            self.add(signature, "signature", f"made by {key.fingerprint}, which keys/ and "
                                             "bundle.json do not both vouch for")
        elif key.fingerprint != recorded_signer:
            self.add(signature, "signature", f"made by {key.fingerprint}, but bundle.json "
                                             f"records {recorded_signer}")
        checksum = verification.get("checksum")
        if item.get("kind") == "artifact" and checksum:
            try:
                expected = read_elastic_sha512(bundle.inside(self.root, str(checksum)),
                                               Path(path).name)
            except (AirgapError, OSError) as exc:
                self.add(str(checksum), "signature", str(exc))
                return
            if expected != item.get("sha512"):
                self.add(str(checksum), "modified", f"does not match {Path(path).name}")

    def operator_signature(self, trust_keys: Iterable[Path]) -> str:
        keys = list(trust_keys)
        signature = self.root / bundle.SUMS_SIGNATURE
        if not signature.is_file():
            if keys:
                self.add(bundle.SUMS_SIGNATURE, "operator-signature",
                         "--trust-key was given but the bundle has no SHA512SUMS.asc")
            return "absent"
        if not keys:
            return "present, not checked (give --trust-key)"
        try:
            with Verifier(keys, include_elastic=False) as verifier:
                verifier.verify(self.root / bundle.SUMS, signature, name=bundle.SUMS)
        except AirgapError as exc:
            self.add(bundle.SUMS_SIGNATURE, "operator-signature", exc.message)
            return "invalid"
        return "valid"


def _run(work: Callable[[Any], None], items: Iterable[Any], jobs: int) -> None:
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="airgap-verify") as pool:
        for future in [pool.submit(work, item) for item in items]:
            future.result()
