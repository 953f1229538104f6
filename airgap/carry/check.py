"""``airgap verify VOLUME``: one volume checked alone, the moment it is inserted.

Its index must be intact (and, with ``trust_keys``, signed by one of them); the pieces the
index puts in this volume must all be there, each of its size and SHA-512. Anything else
in the volume is named in a warning and ignored, as ``airgap join`` ignores it: the files
a medium's system adds (``System Volume Information/``, ``.Trashes``, ``._*``, an empty
``lost+found/``, ...) are no damage, and those :mod:`airgap.bundle.medium` recognises are
said as ``airgap verify BUNDLE`` says them; a ``lost+found/`` that fsck put files in is (the
medium's file system was damaged). A damaged volume can be sent again before the others
arrive.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap.bundle.checks import Problem
from airgap.carry.index import Piece
from airgap.carry.volumes import copy_piece, extras_warnings, lost_and_found_said, open_volume
from airgap.reporter import Reporter
from airgap.threads import map_in_threads


@dataclass(frozen=True)
class VolumeSettings:
    """What ``airgap verify VOLUME`` was asked to do."""

    volume: Path
    trust_keys: tuple[Path, ...] = ()
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)


@dataclass(frozen=True)
class VolumeReport:
    """One volume: which it is, of which bundle, and what is wrong with it."""

    volume: Path
    number: int
    volumes: int
    bundle: str
    delta_of: str | None
    pieces: int
    size: int
    signature: str
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        """What was checked, without the problems (the ``--json`` result)."""
        return {"volume": str(self.volume), "ok": self.ok, "number": self.number,
                "volumes": self.volumes, "bundle": self.bundle, "delta_of": self.delta_of,
                "pieces": self.pieces, "bytes": self.size, "index_signature": self.signature}

    def to_dict(self) -> dict[str, Any]:
        """Everything, problems included."""
        return {**self.summary(), "problems": [p.to_dict() for p in self.problems],
                "warnings": list(self.warnings)}


def verify_volume(settings: VolumeSettings, reporter: Reporter) -> VolumeReport:
    """Check the volume at ``settings.volume``; raises only when it cannot be read as a
    volume at all (no index, a damaged or badly signed index)."""
    found = open_volume(settings.volume, settings.trust_keys)
    expected = found.expected
    names = {p.name for p in expected}
    # What stands where one of its pieces must be is damage; anything else is not read.
    problems = [Problem(odd.path, odd.kind, odd.message) for odd in found.odd
                if odd.path in names]
    lost, said = lost_and_found_said(found)
    if lost is not None:
        problems.append(Problem(lost.path, lost.kind, lost.message))
    warnings = [*extras_warnings(found), *([said] if said else [])]
    size = sum(p.size for p in expected)
    reporter.task_started("volume", f"checking {found.shown}", size)
    stop = threading.Event()
    lock = threading.Lock()

    def one(piece: Piece) -> None:
        def progress(count: int) -> None:
            reporter.task_advanced("volume", count)

        wrong = copy_piece(found.folder, piece, None, stop, progress)
        if wrong is not None:
            with lock:
                problems.append(Problem(piece.name, "piece", f"{wrong} (it holds "
                                                            f"{piece.describe()})"))

    map_in_threads(one, sorted(expected, key=lambda p: -p.size), settings.jobs, stop)
    reporter.task_finished("volume", "done")
    return VolumeReport(found.folder, found.number, found.index.volumes, found.index.bundle,
                        found.index.delta_of, len(expected), size, found.signature,
                        tuple(sorted(problems, key=lambda p: (p.path, p.kind))),
                        tuple(warnings))

