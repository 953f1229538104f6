"""``airgap merge BASE DELTA -o NEW``: a delta and the bundle it was made from, into the
complete new bundle, on the isolated side.

Before anything is written, DELTA must name BASE (by BASE's identity, the SHA-512 of its
SHA512SUMS: any bundle with that identity holds the very same bytes, whenever and however
it came) and both must verify. NEW then gets every file the delta describes: from BASE
by clone where the file system allows, else by copy (hard links only with ``hard_link``),
and from DELTA alike (neither is ever changed); its bundle.json and SHA512SUMS are those the delta's
description makes, its SHA512SUMS.asc the operator's signature the delta carries. NEW
is verified exactly as a full bundle, and removed if it fails. No sequence numbers: any
verified base will do, so a lost delta is replaced by one from an older base.

Without a key from the user, the verifications prove that nothing was lost or altered,
not who vouches for the bundle (:func:`~airgap.bundle.verify.carry_scope`): ``load``
and ``verify`` with ``--trust-key`` do that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap.bundle import layout
from airgap.bundle.delta import identity, shown, target_files
from airgap.bundle.description import BundleDescription, read_description
from airgap.bundle.lock import BundleLock
from airgap.bundle.scan import medium_folder
from airgap.bundle.sums import parse_sums
from airgap.bundle.verify import VerifyReport, VerifySettings, carry_scope, verify_bundle
from airgap.carry.index import INDEX
from airgap.errors import (
    AirgapError,
    BundleError,
    FileSystemError,
    UsageError,
    VerificationError,
    setting,
)
from airgap.files import atomic_write, clone_or_copy, share_or_copy
from airgap.reporter import Reporter
from airgap.units import human_size


@dataclass(frozen=True)
class MergeSettings:
    """What ``airgap merge`` was asked to do."""

    base: Path
    delta: Path
    output: Path
    trust_keys: tuple[Path, ...] = ()
    trust_signers: tuple[Path, ...] = ()
    #: Hard-link NEW's files to BASE's and DELTA's where a clone is impossible: no extra
    #: space, but the bundles then share those files (a change to one changes the other).
    hard_link: bool = False
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)

    def verification(self, folder: Path) -> VerifySettings:
        """How BASE, DELTA and NEW are verified."""
        return VerifySettings(folder, self.trust_keys, self.trust_signers,
                              carry_scope(self.trust_keys), self.jobs)


@dataclass(frozen=True)
class MergeResult:
    """The new bundle, how its files got there, and its verification."""

    path: Path
    base: str
    target: str
    carried: int
    placed: dict[str, int]  # "reflink", "link", "copy": how many files each way
    report: VerifyReport

    def to_dict(self) -> dict[str, Any]:
        """What the merge did, for ``--json``."""
        return {"bundle": str(self.path), "identity": self.target, "base": self.base,
                "carried": self.carried, "placed": dict(self.placed),
                "verification": self.report.summary()}


class MergeRefused(VerificationError):
    """BASE, DELTA or the merged bundle failed verification; ``report`` says how."""

    def __init__(self, message: str, report: VerifyReport) -> None:
        super().__init__(message, details=[f"{p.path}: {p.message}"
                                           for p in report.problems[:20]])
        self.report = report


class BaseMismatchError(VerificationError):
    """The delta was made from another bundle than the one given as its base."""


def merge(settings: MergeSettings, reporter: Reporter) -> MergeResult:
    """Merge ``settings.delta`` into ``settings.base`` as ``settings.output``."""
    base, delta_root, output = settings.base, settings.delta, settings.output
    _refuse_a_volume(delta_root, "the delta")
    _refuse_a_volume(base, "the base")
    description = _delta_description(delta_root)
    assert description.delta is not None
    target = description.delta.target
    base_identity = _identity(base)
    _refuse_a_delta_as_base(base)
    if base_identity != description.delta.base:
        raise BaseMismatchError(
            f"{delta_root} is a delta of the bundle {shown(description.delta.base)}, but "
            f"{base} is the bundle {shown(base_identity)}: nothing was written",
            details=["merge it into the bundle it was made from, or make a delta of this "
                     f"one on the connected side: airgap fetch MANIFEST --since <{base}'s "
                     "bundle.json and SHA512SUMS> -o DELTA"])
    found = _check_output(output, base, delta_root, target)
    for what, folder in (("the delta", delta_root), ("the base", base)):
        report = verify_bundle(settings.verification(folder), reporter)
        if not report.ok:
            raise MergeRefused(f"{what} {folder} failed verification: nothing was written",
                               report)
        for said in report.medium_warnings:  # the new bundle's own check says the rest
            reporter.warning(said)
    carried = sum(1 for i in description.items if i.origin == "carried")
    if found == "merged":  # a merge made it, and was stopped before it said so: check it
        with BundleLock(output):
            pass  # nobody writes it; and the lock a killed merge left goes
        report = verify_bundle(settings.verification(output), reporter)
        if report.ok and _identity(output) == target:
            return MergeResult(output, base_identity, target, carried,
                               {"kept": len(description.items)}, report)
        reporter.warning(f"{output} holds the bundle this merge makes, but it fails "
                         "verification: it is made again")
    text, sums = target_files(description)
    base_paths = {digest: path for path, digest in
                  parse_sums((base / layout.SUMS).read_text(encoding="utf-8"))[0].items()}
    lacking = [i.path for i in description.items
               if i.origin == "base" and i.sha512 not in base_paths]
    if lacking:  # the identities agree, so only a damaged delta description gets here
        raise BaseMismatchError(f"{base} lacks {len(lacking)} file(s) {delta_root} leaves "
                                f"to it, such as {lacking[0]}: nothing was written")
    placed: Counter[str] = Counter()
    fresh = not output.exists()
    total = sum(i.size for i in description.items)
    try:
        with BundleLock(output):
            _clear(output)
            reporter.task_started("merge", f"placing {len(description.items)} files", total)
            for item in description.items:
                source = layout.inside(delta_root, item.path) if item.origin == "carried" \
                    else layout.inside(base, base_paths[item.sha512])
                destination = layout.inside(output, item.path)
                destination.parent.mkdir(parents=True, exist_ok=True)
                placed[_place(source, destination, settings.hard_link)] += 1
                reporter.task_advanced("merge", item.size)
            reporter.task_finished("merge", "done")
            atomic_write(output / layout.DESCRIPTION, text)
            if description.delta.target_signature is not None:
                atomic_write(output / layout.SUMS_SIGNATURE,
                             description.delta.target_signature)
            atomic_write(output / layout.SUMS, sums)
        # Until it verifies, NEW is no bundle: whatever stops the merge now removes it.
        report = verify_bundle(settings.verification(output), reporter)
        if not report.ok or _identity(output) != target:
            raise MergeRefused(f"the merged bundle failed verification: "
                               f"{_removed(output, fresh)}", report)
    except MergeRefused:
        _remove(output, fresh)
        raise
    except OSError as exc:
        _remove(output, fresh)
        raise FileSystemError.from_os_error(exc, left=(
            f"{_removed(output, fresh)}; the new bundle takes up to {human_size(total)}"
        )) from None
    except BaseException:
        _remove(output, fresh)
        raise
    return MergeResult(output, base_identity, target, carried, dict(placed), report)


def what_is_left(settings: MergeSettings) -> str:
    """What a merge stopped by Ctrl-C or SIGTERM left, read from the disk (so that it is
    true however far it got), and what to run."""
    output = settings.output
    sources = f"{settings.base} and {settings.delta} are as they were"
    try:
        entries = {p.name for p in output.iterdir()} if output.is_dir() else set()
        delta = read_description(settings.delta).delta if layout.SUMS in entries else None
        merged = delta is not None and _identity(output) == delta.target
    except (AirgapError, OSError):
        entries, merged = {"?"}, False
    if merged:
        return (f"{output} holds the merged bundle, as before; {sources}: run the same "
                "command again to check it")
    if not entries - {layout.LOCK}:
        return (f"nothing is left in {output}: what was written was removed; {sources}: "
                "run the same command again")
    return (f"{output} holds an unfinished merge, which the same command run again "
            f"replaces; {sources}")


def _removed(output: Path, fresh: bool) -> str:
    """What :func:`_remove` does to ``output``, as a message says it."""
    return f"{output} was removed" if fresh else f"what was written in {output} was removed"


def _remove(output: Path, fresh: bool) -> None:
    """Remove what this merge wrote: the whole folder when it made it, else what is in it."""
    if fresh:
        shutil.rmtree(output, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        for entry in output.iterdir():
            if medium_folder(entry):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _place(source: Path, target: Path, hard_link: bool) -> str:
    """Put ``source``'s bytes at ``target``: a clone, else (``hard_link``) a hard link, else a
    copy; which it was."""
    if hard_link:
        return share_or_copy(source, target)
    return "reflink" if clone_or_copy(source, target) else "copy"


def _delta_description(delta: Path) -> BundleDescription:
    if not delta.is_dir():
        raise UsageError(f"{delta}: no such delta directory")
    description = read_description(delta)
    if description.delta is None:
        raise UsageError(f"{delta} is a complete bundle, not a delta: there is nothing to "
                         "merge", details=[f"use it as it is: airgap verify {delta}"])
    return description


def _refuse_a_delta_as_base(base: Path) -> None:
    try:
        delta = read_description(base).delta
    except BundleError:
        return  # its verification says what is wrong with it
    if delta is not None:
        raise UsageError(f"{base} is a delta itself, not a complete bundle",
                         details=[f"merge it into its own base ({shown(delta.base)}) first, "
                                  "and give the bundle that makes"])


def _identity(base: Path) -> str:
    try:
        return identity((base / layout.SUMS).read_bytes())
    except FileNotFoundError:
        raise BaseMismatchError(f"{base} is not a complete bundle: it has no "
                                f"{layout.SUMS}") from None
    except OSError as exc:
        raise BundleError(f"{base / layout.SUMS}: cannot be read: {exc.strerror}") from None


def _check_output(output: Path, base: Path, delta: Path, target: str) -> str:
    """NEW is a new or empty folder (``new``), one an interrupted merge left (``unfinished``,
    by its lock and no SHA512SUMS yet) or the bundle this merge makes (``merged``: by the
    identity of its SHA512SUMS, a merge stopped while it verified it), outside both."""
    resolved = output.resolve()
    for folder in (base, delta):
        if resolved == folder.resolve() or folder.resolve() in resolved.parents:
            raise UsageError(f"{setting('output')} {output} is inside {folder}: the new "
                             "bundle goes into a folder of its own, never into its sources")
    if not output.exists():
        return "new"
    if not output.is_dir():
        raise UsageError(f"{output} exists and is not a folder")
    entries = [p.name for p in output.iterdir() if not medium_folder(p)]
    if not entries:
        return "new"
    if layout.SUMS in entries and _identity(output) == target:
        return "merged"
    if layout.LOCK in entries and layout.SUMS not in entries:
        return "unfinished"
    raise UsageError(f"{output} is not a new or empty folder, nor one a merge of this delta "
                     "left", details=[f"give {setting('output')} a new folder for the merged "
                                      "bundle"])


def _refuse_a_volume(folder: Path, what: str) -> None:
    """A volume of a split bundle (or the folder of volumes) is joined first."""
    if (folder / INDEX).is_file():
        volumes, shown_as = folder.parent, f"{folder}, given as {what}, is a volume of a split " \
                                           "bundle, not a bundle"
    elif any((entry / INDEX).is_file() for entry in _subfolders(folder)):
        volumes, shown_as = folder, f"{folder}, given as {what}, holds the volumes of a " \
                                    "split bundle, not a bundle"
    else:
        return
    raise UsageError(shown_as, details=[f"join the volumes first: airgap join {volumes}/* -o "
                                        f"FOLDER, then give that FOLDER as {what}"])


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [entry for entry in folder.iterdir() if entry.is_dir() and not entry.is_symlink()]
    except OSError:
        return []


def _clear(output: Path) -> None:
    """Remove what an interrupted merge left (the lock, which this run holds, stays)."""
    for entry in output.iterdir():
        if entry.name == layout.LOCK or medium_folder(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
