"""``airgap join VOLUME... -o BUNDLE``: the bundle back from its volumes, in any order.

Volumes can come all at once or one at a time as they arrive (``partial``): each piece
is streamed from its volume to its place in its file while it is hashed, and kept only
when its SHA-512 is the index's. What is joined so far waits in ``BUNDLE/.airgap-join/``
(the index, the pieces done, the files being filled); when the last piece is in, the
files take their names, SHA512SUMS last (its SHA-512 must be the bundle's identity), and
the bundle is verified as any bundle (a file copied whole in this run with the digests
taken of the bytes written: :func:`_add`). Volumes are only ever read, never changed or
removed. A volume of another bundle (or of another split) or one given twice is refused,
and a set still missing volumes is not finished, naming the volumes still to join; a
volume joined already (the same command run again after Ctrl-C) is skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap.bundle import layout
from airgap.bundle.checks import wants_sha256
from airgap.bundle.delta import identity, shown
from airgap.bundle.lock import BundleLock
from airgap.bundle.scan import medium_folder
from airgap.bundle.verify import VerifyReport, VerifySettings, carry_scope, verify_bundle
from airgap.carry.index import Piece, VolumeIndex
from airgap.carry.join_state import STATE, JoinState
from airgap.carry.volumes import (
    FoundVolume,
    copy_piece,
    extras_warnings,
    lost_and_found_said,
    open_volume,
)
from airgap.errors import AirgapError, UsageError, VerificationError, setting
from airgap.reporter import Reporter
from airgap.threads import map_in_threads
from airgap.trust.digests import Digests, Hasher


@dataclass(frozen=True)
class JoinSettings:
    """What ``airgap join`` was asked to do."""

    volumes: tuple[Path, ...]
    bundle: Path
    trust_keys: tuple[Path, ...] = ()
    trust_signers: tuple[Path, ...] = ()
    partial: bool = False  # more volumes will come: do not refuse the ones missing
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)


@dataclass(frozen=True)
class JoinResult:
    """Where the join stands: the volumes added now, those given that were in already,
    every volume in so far, those still awaited, and, once the bundle is whole, its
    verification."""

    bundle: Path
    identity: str
    volumes: int
    added: tuple[int, ...]
    missing: tuple[int, ...]
    report: VerifyReport | None
    skipped: tuple[int, ...] = ()
    joined: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Where the join stands, for ``--json``."""
        return {"bundle": str(self.bundle), "identity": self.identity,
                "volumes": self.volumes, "added": list(self.added),
                "skipped": list(self.skipped), "joined": list(self.joined),
                "missing": list(self.missing), "complete": self.report is not None,
                "verification": self.report.summary() if self.report is not None else None}


class IncompleteError(AirgapError):
    """Volumes are missing: the bundle is not whole yet (what was joined is kept);
    ``result`` says which are in and which are not."""

    def __init__(self, result: JoinResult) -> None:
        root = result.bundle
        super().__init__(
            f"volume(s) {_numbers(result.missing)} of {result.volumes} are missing: {root} "
            "is not a bundle yet",
            details=[f"the pieces of volume(s) {_numbers(result.joined) or 'none'} are kept; "
                     f"add the others with airgap join VOLUME -o {root}"])
        self.result = result


class JoinRefused(VerificationError):
    """The joined bundle failed verification; ``report`` says how."""

    def __init__(self, report: VerifyReport) -> None:
        super().__init__(f"the joined bundle {report.bundle} failed verification",
                         details=[f"{p.path}: {p.message}" for p in report.problems[:20]])
        self.report = report


def join(settings: JoinSettings, reporter: Reporter) -> JoinResult:
    """Add ``settings.volumes`` to the bundle at ``settings.bundle``; finish it when every
    volume is in. Volumes joined already (by a run that was stopped, say) are skipped."""
    if not settings.volumes:
        raise UsageError("no volume given")
    found = [open_volume(v, settings.trust_keys) for v in settings.volumes]
    for volume in found:
        for extras in extras_warnings(volume):
            reporter.warning(extras)
        # fsck's files are no piece: every piece is checked against the index all the same
        lost, said = lost_and_found_said(volume)
        if lost is not None:
            said = f"{volume.folder / lost.path}: {lost.message}"
        if said is not None:
            reporter.warning(said)
    root = settings.bundle
    state = JoinState(root)
    _check_bundle_folder(root, state, found[0])
    fresh, had_lock = not root.exists(), (root / layout.LOCK).exists()
    started = False
    hashed: dict[str, Digests] = {}
    try:
        with BundleLock(root):
            data = state.index() or found[0].data
            index = VolumeIndex.from_bytes(data, str(state.path))
            done = state.done()
            _refuse_foreign(found, index, _missing(index, done))
            _refuse_twice(found, index, _missing(index, done))
            whole = _holds_bundle(root, index.bundle)
            if whole:  # stopped once every file was in place: only the check is left
                state.forget()
                reporter.info(f"{root} holds every volume of the bundle "
                              f"{shown(index.bundle)} already: checking it again")
                done = {p.name for p in index.pieces}
            joined_before = _joined(index, done)
            skipped = tuple(sorted({v.number for v in found if v.number in joined_before}))
            if not whole:
                for volume in sorted(found, key=lambda v: v.number):
                    if volume.number in joined_before:
                        reporter.info(f"{volume.folder} ({volume.shown}) is joined already: "
                                      "skipped")
                state.start(data)
                started = True
                added, problems, hashed = _add(found, index, state, done, settings.jobs,
                                               reporter)
                done |= added
                if problems:
                    raise VerificationError(f"{len(problems)} damaged piece(s): send those "
                                            "volumes again; every intact piece is kept",
                                            details=problems)
            joined = _joined(index, done)
            missing = _missing(index, done)
            added_now = tuple(sorted({v.number for v in found} - set(skipped)))
            result = JoinResult(root, index.bundle, index.volumes, added_now, missing, None,
                                skipped, joined)
            if missing:
                if settings.partial:
                    return result
                raise IncompleteError(result)
            if not whole:
                state.finish(index)
    except BaseException:
        if not started:  # refused (or stopped) before anything was written: leave nothing
            _leave_nothing(root, fresh, had_lock)
        raise
    report = verify_bundle(VerifySettings(root, settings.trust_keys, settings.trust_signers,
                                          carry_scope(settings.trust_keys),
                                          settings.jobs, hashed), reporter)
    if not report.ok:
        raise JoinRefused(report)
    return dataclasses.replace(result, report=report)


def where_it_stands(root: Path) -> str:
    """What a join stopped in ``root`` (by Ctrl-C, say) left there, and what to run; read
    from the disk, so that it is true however far the join got."""
    state = JoinState(root)
    data = state.index()
    if data is None:
        if (root / layout.SUMS).is_file():
            return (f"every volume is joined into {root}: run the same command again to "
                    "check the bundle")
        if not root.exists():
            return f"nothing was written ({root} was not made): run the same command again"
        return f"nothing was joined into {root}: run the same command again"
    try:
        index = VolumeIndex.from_bytes(data, str(state.path))
    except AirgapError:
        return f"what was joined is kept in {root}/{STATE}: run the same command again"
    done = state.done()
    joined, missing = _joined(index, done), _missing(index, done)
    if not missing:
        return (f"every volume is joined into {root}: run the same command again to put "
                "the files in place and check the bundle")
    partly = [n for n in missing if any(p.name in done for p in index.of_volume(n))]
    some = "".join(f" and {sum(p.name in done for p in index.of_volume(n))} of the "
                   f"{len(index.of_volume(n))} pieces of volume {n}" for n in partly)
    kept = f"volume(s) {_numbers(joined)} of {index.volumes}" if joined else "no volume"
    return (f"{kept}{some} kept in {root}; volume(s) {_numbers(missing)} still to join: "
            "run the same command again to go on")


def _numbers(numbers: Iterable[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def _joined(index: VolumeIndex, done: set[str]) -> tuple[int, ...]:
    """The volumes whose every piece is in."""
    return tuple(n for n in range(1, index.volumes + 1)
                 if all(p.name in done for p in index.of_volume(n)))


def _missing(index: VolumeIndex, done: set[str]) -> tuple[int, ...]:
    joined = set(_joined(index, done))
    return tuple(n for n in range(1, index.volumes + 1) if n not in joined)


def _still_missing(missing: tuple[int, ...], volumes: int) -> list[str]:
    return [f"volume(s) {_numbers(missing)} of {volumes} are still to join"] if missing else []


def _holds_bundle(root: Path, bundle: str) -> bool:
    """Whether ``root`` holds the SHA512SUMS of ``bundle``: put in place last, it says every
    file of the join is in place."""
    sums = root / layout.SUMS
    try:
        return sums.is_file() and not sums.is_symlink() and \
            identity(sums.read_bytes()) == bundle
    except OSError:
        return False


def _check_bundle_folder(root: Path, state: JoinState, first: FoundVolume) -> None:
    """A join goes into a new or empty folder, or one a join of the same bundle began or
    finished (then it goes on, or checks it again)."""
    if state.path.is_dir() or not root.exists() or _holds_bundle(root, first.index.bundle):
        return
    if not root.is_dir() or any(p.name != layout.LOCK and not medium_folder(p)
                                for p in root.iterdir()):
        raise UsageError(f"{root} is not a new or empty folder, nor one a join of the bundle "
                         f"{shown(first.index.bundle)} began",
                         details=[f"give {setting('output')} a folder of its own"])


def _leave_nothing(root: Path, fresh: bool, had_lock: bool) -> None:
    """Take back the lock file (and the folder, when this run made it)."""
    if not had_lock:
        with contextlib.suppress(OSError):
            (root / layout.LOCK).unlink()
    if fresh:
        with contextlib.suppress(OSError):
            root.rmdir()


def _refuse_foreign(found: list[FoundVolume], index: VolumeIndex,
                    missing: tuple[int, ...]) -> None:
    for volume in found:
        if volume.index.identity == index.identity:
            continue
        if volume.index.bundle == index.bundle:
            raise UsageError(f"{volume.folder} ({volume.shown}) is from another split of the "
                             f"same bundle {shown(index.bundle)}: volumes of one split only",
                             details=[f"this split's set is {shown(index.identity)}, that "
                                      f"volume's {shown(volume.index.identity)}",
                                      *_still_missing(missing, index.volumes)])
        raise UsageError(f"{volume.folder} ({volume.shown}) belongs to the bundle "
                         f"{shown(volume.index.bundle)}, not to {shown(index.bundle)}, "
                         "the bundle being joined: it is a foreign volume",
                         details=_still_missing(missing, index.volumes))


def _refuse_twice(found: list[FoundVolume], index: VolumeIndex,
                  missing: tuple[int, ...]) -> None:
    counts = Counter(v.number for v in found)
    for number, count in sorted(counts.items()):
        if count > 1:
            folders = ", ".join(str(v.folder) for v in found if v.number == number)
            raise UsageError(f"volume {number} of {index.volumes} is given {count} times "
                             f"({folders})", details=_still_missing(missing, index.volumes))


def _add(found: list[FoundVolume], index: VolumeIndex, state: JoinState, done: set[str],
         jobs: int, reporter: Reporter) -> tuple[set[str], list[str], dict[str, Digests]]:
    """Copy the pieces of the volumes ``found`` not yet joined, all volumes at once (one
    large piece per volume would otherwise leave a core idle); return the pieces that were
    intact, a line for each damaged one, and the digests of the files joined whole now.

    A file whose every piece comes now is copied by one task, its pieces in order, and
    hashed whole from the very buffers written (its first piece's hash is the file's so
    far: hashed once); the verification that follows takes those digests for a re-read.
    A file some of whose pieces came earlier (or come later) is copied piece by piece,
    and the verification re-hashes it."""
    files = index.files()
    numbers = {path: k for k, path in enumerate(files)}
    todo = [(volume, p) for volume in found for p in volume.expected if p.name not in done]
    if not todo:
        return set(), [], {}
    given = {p.name for _, p in todo}
    whole_now = {path for path, pieces in files.items() if all(p.name in given for p in pieces)}
    tasks: list[list[tuple[FoundVolume, Piece]]] = []
    by_file: dict[str, list[tuple[FoundVolume, Piece]]] = {}
    for work in todo:
        if work[1].file in whole_now:
            by_file.setdefault(work[1].file, []).append(work)
        else:
            tasks.append([work])
    tasks += [sorted(works, key=lambda w: w[1].offset) for works in by_file.values()]
    reporter.task_started("join", f"joining {_numbers(sorted({v.number for v, _ in todo}))} "
                                  f"of {index.volumes} volumes", sum(p.size for _, p in todo))
    added: set[str] = set()
    wrong: list[str] = []
    hashed: dict[str, Digests] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def one(task: list[tuple[FoundVolume, Piece]]) -> None:
        path = task[0][1].file
        whole = Hasher(sha256=wants_sha256(path)) if path in whole_now else None
        # Every byte of a file joined whole comes now: nothing stale is left past its end.
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        if whole is not None:
            flags |= os.O_TRUNC
        fd = os.open(state.part(numbers[path]), flags, 0o644)
        try:
            for volume, piece in task:
                problem = copy_piece(volume.folder, piece, fd, stop,
                                     lambda n: reporter.task_advanced("join", n), whole)
                if problem is None:
                    os.fdatasync(fd)  # on the disk before it is recorded as joined
                else:
                    whole = None  # its hash is lost with the piece (the join fails anyway)
                with lock:
                    if problem is None:
                        added.add(piece.name)
                    else:
                        wrong.append(f"{volume.shown}, piece {piece.name} "
                                     f"({piece.describe()}): {problem}")
        finally:
            os.close(fd)
        if whole is not None:
            with lock:
                hashed[path] = whole.digests()

    try:
        map_in_threads(one, sorted(tasks, key=lambda t: -sum(p.size for _, p in t)), jobs,
                       stop)
    finally:  # interrupted too: what is on the disk is not copied again
        state.record(done | added)
    reporter.task_finished("join", "done" if not wrong else "damaged")
    return added, sorted(wrong), hashed
