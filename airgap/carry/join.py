"""``airgap join VOLUME... -o BUNDLE``: the bundle back from its volumes, in any order.

Volumes can come all at once or one at a time as they arrive (``partial``): each piece
is streamed from its volume to its place in its file while it is hashed, and kept only
when its SHA-512 is the index's. What is joined so far waits in ``BUNDLE/.airgap-join/``
(the index, the pieces done, the files being filled); when the last piece is in, the
files take their names, SHA512SUMS last (its SHA-512 must be the bundle's identity), and
the bundle is verified as any bundle. Volumes are only ever read, never changed or
removed. A volume of another bundle (or of another split), one given twice, one already
joined, or a set still missing volumes is refused, by number.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap.bundle import layout
from airgap.bundle.delta import identity, shown
from airgap.bundle.lock import BundleLock
from airgap.bundle.verify import VerifyReport, VerifySettings, carry_scope, verify_bundle
from airgap.carry.index import Piece, VolumeIndex
from airgap.carry.volumes import FoundVolume, copy_piece, extras_warning, open_volume
from airgap.errors import AirgapError, BundleError, UsageError, VerificationError, setting
from airgap.files import atomic_write, fsync_folder
from airgap.reporter import Reporter
from airgap.threads import map_in_threads

STATE = ".airgap-join"


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
    """Where the join stands: the volumes added now, those still awaited, and, once the
    bundle is whole, its verification."""

    bundle: Path
    identity: str
    volumes: int
    added: tuple[int, ...]
    missing: tuple[int, ...]
    report: VerifyReport | None

    def to_dict(self) -> dict[str, Any]:
        """Where the join stands, for ``--json``."""
        return {"bundle": str(self.bundle), "identity": self.identity,
                "volumes": self.volumes, "added": list(self.added),
                "missing": list(self.missing), "complete": self.report is not None,
                "verification": self.report.summary() if self.report is not None else None}


class IncompleteError(AirgapError):
    """Volumes are missing: the bundle is not whole yet (what was joined is kept)."""


class JoinRefused(VerificationError):
    """The joined bundle failed verification; ``report`` says how."""

    def __init__(self, report: VerifyReport) -> None:
        super().__init__(f"the joined bundle {report.bundle} failed verification",
                         details=[f"{p.path}: {p.message}" for p in report.problems[:20]])
        self.report = report


def join(settings: JoinSettings, reporter: Reporter) -> JoinResult:
    """Add ``settings.volumes`` to the bundle at ``settings.bundle``; finish it when every
    volume is in."""
    if not settings.volumes:
        raise UsageError("no volume given")
    found = [open_volume(v, settings.trust_keys) for v in settings.volumes]
    for volume in found:
        if (extras := extras_warning(volume)) is not None:
            reporter.warning(extras)
    root = settings.bundle
    state = _State(root)
    _check_bundle_folder(root, state, found[0])
    with BundleLock(root):
        data = state.index() or found[0].data
        index = VolumeIndex.from_bytes(data, str(state.path))
        _refuse_foreign(found, data, index)
        done = state.done()
        _refuse_twice(found, index, done, root)
        state.start(data)
        added, problems = _add(found, index, state, done, settings.jobs, reporter)
        done |= added
        if problems:
            raise VerificationError(f"{len(problems)} damaged piece(s): send those volumes "
                                    "again; every intact piece is kept", details=problems)
        complete = {n for n in range(1, index.volumes + 1)
                    if all(p.name in done for p in index.of_volume(n))}
        missing = tuple(n for n in range(1, index.volumes + 1) if n not in complete)
        added_now = tuple(sorted({v.number for v in found}))
        if missing:
            if settings.partial:
                return JoinResult(root, index.bundle, index.volumes, added_now, missing, None)
            raise IncompleteError(
                f"volume(s) {_numbers(missing)} of {index.volumes} are missing: {root} is "
                "not a bundle yet",
                details=[f"the pieces of volume(s) {_numbers(sorted(complete))} are kept; add "
                         f"the others with airgap join VOLUME -o {root}"])
        state.finish(index)
    report = verify_bundle(VerifySettings(root, settings.trust_keys, settings.trust_signers,
                                          carry_scope(settings.trust_keys),
                                          settings.jobs), reporter)
    if not report.ok:
        raise JoinRefused(report)
    return JoinResult(root, index.bundle, index.volumes, added_now, (), report)


def _numbers(numbers: Iterable[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def _check_bundle_folder(root: Path, state: _State, first: FoundVolume) -> None:
    """A join goes into a new or empty folder, or one an earlier join of the set began."""
    if state.path.is_dir() or not root.exists():
        return
    sums = root / layout.SUMS
    if sums.is_file() and identity(sums.read_bytes()) == first.index.bundle:
        raise UsageError(f"{root} already holds the bundle {shown(first.index.bundle)}: "
                         "every volume is joined", details=[f"check it: airgap verify {root}"])
    if not root.is_dir() or any(p.name != layout.LOCK for p in root.iterdir()):
        raise UsageError(f"{root} is not a new or empty folder, nor one a join began",
                         details=[f"give {setting('output')} a folder of its own"])


def _refuse_foreign(found: list[FoundVolume], data: bytes, index: VolumeIndex) -> None:
    for volume in found:
        if volume.index.identity == index.identity:
            continue
        if volume.index.bundle == index.bundle:
            raise UsageError(f"{volume.folder} ({volume.shown}) is from another split of the "
                             f"same bundle {shown(index.bundle)}: volumes of one split only",
                             details=[f"this split's set is {shown(index.identity)}, that "
                                      f"volume's {shown(volume.index.identity)}"])
        raise UsageError(f"{volume.folder} ({volume.shown}) belongs to the bundle "
                         f"{shown(volume.index.bundle)}, not to {shown(index.bundle)}, "
                         "the bundle being joined: it is a foreign volume")


def _refuse_twice(found: list[FoundVolume], index: VolumeIndex, done: set[str],
                  root: Path) -> None:
    counts = Counter(v.number for v in found)
    for number, count in sorted(counts.items()):
        if count > 1:
            folders = ", ".join(str(v.folder) for v in found if v.number == number)
            raise UsageError(f"volume {number} of {index.volumes} is given {count} times "
                             f"({folders})")
    if len(done) == len(index.pieces):
        return  # every piece is in: what stopped the last join was putting them in place
    for volume in found:
        if all(p.name in done for p in volume.expected):
            raise UsageError(f"{volume.folder} ({volume.shown}) is already joined into "
                             f"{root}", details=["give only the volumes still missing"])


def _add(found: list[FoundVolume], index: VolumeIndex, state: _State, done: set[str],
         jobs: int, reporter: Reporter) -> tuple[set[str], list[str]]:
    """Copy the pieces of the volumes ``found`` not yet joined, all volumes at once (one
    large piece per volume would otherwise leave a core idle); return the pieces that were
    intact, and a line for each damaged one."""
    numbers = {path: k for k, path in enumerate(index.files())}
    todo = [(volume, p) for volume in found for p in volume.expected if p.name not in done]
    reporter.task_started("join", f"joining {_numbers(sorted(v.number for v in found))} of "
                                  f"{index.volumes} volumes", sum(p.size for _, p in todo))
    added: set[str] = set()
    wrong: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def one(work: tuple[FoundVolume, Piece]) -> None:
        volume, piece = work
        fd = os.open(state.part(numbers[piece.file]), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                     0o644)
        try:
            problem = copy_piece(volume.folder, piece, fd, stop,
                                 lambda n: reporter.task_advanced("join", n))
            if problem is None:
                os.fsync(fd)  # on the disk before it is recorded as joined
        finally:
            os.close(fd)
        with lock:
            if problem is None:
                added.add(piece.name)
            else:
                wrong.append(f"{volume.shown}, piece {piece.name} ({piece.describe()}): "
                             f"{problem}")

    try:
        map_in_threads(one, sorted(todo, key=lambda w: -w[1].size), jobs, stop)
    finally:  # interrupted too: what is on the disk is not copied again
        state.record(done | added)
    reporter.task_finished("join", "done" if not wrong else "damaged")
    return added, sorted(wrong)


class _State:
    """What a join in progress keeps in ``BUNDLE/.airgap-join``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / STATE
        self._index = self.path / "index.json"
        self._done = self.path / "done"
        self._parts = self.path / "parts"

    def index(self) -> bytes | None:
        """The index of the set being joined, or None when no join has begun."""
        try:
            return self._index.read_bytes()
        except FileNotFoundError:
            return None

    def done(self) -> set[str]:
        """The pieces joined and on disk."""
        try:
            return set(self._done.read_text(encoding="ascii", errors="replace").split())
        except FileNotFoundError:
            return set()

    def start(self, data: bytes) -> None:
        """Begin the join of the set ``data`` indexes (nothing when it has begun)."""
        self._parts.mkdir(parents=True, exist_ok=True)
        if not self._index.exists():
            atomic_write(self._index, data)

    def part(self, number: int) -> Path:
        """Where the file numbered ``number`` is filled."""
        return self._parts / str(number)

    def record(self, done: set[str]) -> None:
        """Remember ``done`` (their bytes are on disk already)."""
        atomic_write(self._done, "".join(f"{name}\n" for name in sorted(done)))

    def finish(self, index: VolumeIndex) -> None:
        """Give every file its name, SHA512SUMS last; then forget the join."""
        files = list(index.files())
        sums_part = self.part(files.index(layout.SUMS))
        if identity(sums_part.read_bytes()) != index.bundle:
            raise VerificationError(f"the joined {layout.SUMS} is not the bundle's "
                                    f"{shown(index.bundle)}: the index does not describe "
                                    "its own bundle")
        for number, path in enumerate(files):
            if path != layout.SUMS:
                self._place(number, path)
        self._place(files.index(layout.SUMS), layout.SUMS)
        shutil.rmtree(self.path)

    def _place(self, number: int, path: str) -> None:
        target = layout.inside(self.root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.part(number).replace(target)
        except OSError as exc:
            raise BundleError(f"{target}: cannot be put in place: {exc.strerror}") from None
        fsync_folder(target.parent)
