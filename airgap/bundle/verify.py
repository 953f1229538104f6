"""``airgap verify``: prove, offline, that a bundle is exactly what was fetched, and that
something from outside it vouches for every file that leaves it.

Every file is hashed again (in parallel) against SHA512SUMS, and image blobs against
their sha256 names (a file the caller has just written and hashed from the bytes it
wrote, ``hashed``, is checked with those digests instead: ``airgap join``); missing,
modified, unlisted and unreadable files, and anything that is not a regular file (a
symbolic link is never followed), are reported; what a medium's system added
(:mod:`airgap.bundle.medium`) is a warning, and never read. bundle.json must exist and
agree with SHA512SUMS and with the files; keys/ must hold exactly the keys it records.
Which files must be signed is decided from where they lie (every artifact under
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap.bundle import defend, layout
from airgap.bundle.checks import EVERY_AREA, BundleCheck, Problem
from airgap.bundle.description import refuse_not_a_bundle
from airgap.bundle.lock import refuse_while_written
from airgap.bundle.medium import named_like
from airgap.bundle.scan import scan
from airgap.bundle.tailored import check_tailored
from airgap.bundle.vouch import (
    IMAGE_INDEX,
    UNSIGNED_AREAS,
    operator_signature,
    unvouched_area,
    unvouched_description,
    unvouched_image,
)
from airgap.errors import BundleError, VerificationError
from airgap.reporter import Reporter
from airgap.threads import SidePool
from airgap.trust.digests import Digests
from airgap.trust.gpg import Verifier


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
    #: Digests of files the caller has just written, taken from the very bytes it wrote
    #: (``airgap join``): checked in place of a re-read (:meth:`BundleCheck.hash_all`).
    hashed: Mapping[str, Digests] = field(default_factory=dict)


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
    #: The warnings of ``warnings`` about the medium the bundle lies on (its empty
    #: lost+found, what macOS or Windows added): what a command that reads a bundle only to
    #: make another (merge) still says of it.
    medium_warnings: tuple[str, ...] = ()
    #: Of ``files``, those whose digests were taken as their writer hashed them (join).
    hashed_as_written: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        """What was checked, without the problems and warnings (the ``--json`` result)."""
        return {"bundle": str(self.bundle), "ok": self.ok, "files": self.files,
                "bytes": self.size, "signatures": self.signatures,
                "operator_signature": self.operator_signature, "delta_of": self.delta_of,
                "signatures_not_vouched": self.not_vouched,
                "layer_packages": self.layer_packages,
                "hashed_as_written": self.hashed_as_written}

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


def verify_bundle(settings: VerifySettings, reporter: Reporter) -> VerifyReport:
    """Check the bundle at ``settings.bundle``; never raises for what it finds wrong."""
    root = settings.bundle
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle directory")
    refuse_while_written(root)
    refuse_not_a_bundle(root)
    found = scan(root, skip=frozenset({layout.STAGING}))
    check = BundleCheck(root, found.regular)
    for odd in found.odd:
        check.add(odd.path, odd.kind, odd.message)
    medium = found.medium.warnings(root)  # what a medium's system added: never read
    if found.lost is not None:  # the medium's: damage only when fsck put files in it
        if (lost := found.lost.problem()) is not None:
            check.add(lost.path, lost.kind, lost.message)
        elif (said := found.lost.warning(root)) is not None:
            medium.insert(0, said)
    check.warnings.extend(medium)
    check.staging()
    sums = check.sums()
    for path in sorted(found.regular - set(sums) - layout.NOT_SUMMED):
        check.add(path, "unlisted", "not in SHA512SUMS: added after the fetch" + (
            " (named like a file macOS or Windows adds to a medium, but it does not hold "
            "one)" if named_like(path) else ""))
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
            size = check.hash_all(sums, settings.jobs, reporter, settings.hashed)
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
                        check.layer_packages, tuple(medium), check.taken_as_written)
