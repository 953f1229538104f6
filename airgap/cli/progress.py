"""Progress as a person sees it: what core code reports through :class:`~airgap.reporter.Reporter`,
counted (:class:`CountingReporter`) and shown by :mod:`airgap.cli.reporters`.

At a terminal (``TerminalReporter``) one live line per phase (bytes of known
totals, speed and time left, as ``docker pull`` and ``skopeo copy`` show them) and a
line for each item as it ends. Into a pipe or a log (``LogReporter``) plain lines,
never wrapped, one event each with a UTC time, and every 30 seconds a progress line per
busy phase. Both keep count of what was done, for the line an interruption prints.
Bytes are shown apart by where they came from: fetched now, resumed from a partial
download, kept from an earlier run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from rich.progress import TaskID

from airgap.cli.output import print_warning
from airgap.units import human_size

#: How often a log gets a progress line for a phase that is moving bytes.
LOG_EVERY = 30.0


@dataclass
class Phase:
    description: str
    total: int | None = None
    items: int | None = None
    done_items: int = 0
    new: int = 0
    resumed: int = 0
    kept: int = 0
    known: int = 0  # the sum of the totals its items announced
    finished: bool = False
    implicit: bool = False  # made for an item that came without a phase
    task: TaskID | None = None
    logged_at: float = field(default_factory=time.monotonic)
    logged_bytes: int = 0


@dataclass
class Item:
    phase: str
    description: str
    total: int | None
    resumed: int = 0
    moved: int = 0


class CountingReporter:
    """Keeps the state every front end needs: phases, items in flight, bytes by origin.
    Subclasses show it; this one shows only warnings (``--quiet``, ``--json``)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.phases: dict[str, Phase] = {}
        self.items: dict[str, Item] = {}
        self.finished = 0
        self.kept = 0
        self.finished_bytes = 0

    # -- what the interruption line says --------------------------------------------------

    def summary(self) -> str:
        """What was done so far, for the line an interruption prints."""
        with self._lock:
            partial = sum(1 for item in self.items.values() if item.moved + item.resumed)
            parts = []
            if self.finished:
                parts.append(f"{self.finished} files done ({human_size(self.finished_bytes)})")
            if self.kept:
                parts.append(f"{self.kept} kept from before")
            if partial:
                parts.append(f"{partial} partial")
        return ", ".join(parts)

    # -- the Reporter protocol ------------------------------------------------------------

    def phase_started(self, phase: str, description: str, *, total: int | None = None,
                      items: int | None = None) -> None:
        with self._lock:
            self.phases[phase] = Phase(description, total, items)
            self._shown(phase)

    def phase_sized(self, phase: str, total: int, items: int) -> None:
        with self._lock:
            state = self.phases.get(phase)
            if state is None or state.finished:
                return
            state.total, state.items = total, items
            self._sized(phase)

    def phase_finished(self, phase: str, summary: str = "") -> None:
        with self._lock:
            state = self.phases.get(phase)
            if state is None or state.finished:
                return
            state.finished = True
            self._ended(phase, summary)

    def task_started(self, key: str, description: str, total: int | None, *,
                     phase: str = "", resumed: int = 0) -> None:
        with self._lock:
            phase = phase or key
            if phase not in self.phases:
                self.phases[phase] = Phase(description, total, implicit=True)
                self._shown(phase)
            self.items[key] = Item(phase, description, total, resumed)
            state = self.phases[phase]
            state.resumed += resumed
            state.known += total or 0
            self._moved(phase)

    def task_sized(self, key: str, total: int) -> None:
        with self._lock:
            item = self.items.get(key)
            if item is not None and item.total is None:
                item.total = total
                self.phases[item.phase].known += total
                self._moved(item.phase)

    def task_advanced(self, key: str, nbytes: int) -> None:
        with self._lock:
            item = self.items.get(key)
            if item is None:
                return
            item.moved += nbytes
            self.phases[item.phase].new += nbytes
            self._moved(item.phase)

    def task_restarted(self, key: str, completed: int) -> None:
        with self._lock:
            item = self.items.get(key)
            if item is None:
                return
            state = self.phases[item.phase]
            state.resumed -= item.resumed
            state.new -= item.moved
            item.resumed, item.moved = 0, completed
            state.new += completed
            self._moved(item.phase)

    def task_waiting(self, key: str, what: str) -> None:
        with self._lock:
            item = self.items.get(key)
            if item is not None:
                self._waiting(item, what)

    def task_finished(self, key: str, outcome: str, detail: str = "") -> None:
        with self._lock:
            item = self.items.pop(key, None)
            if item is None:
                return
            state = self.phases[item.phase]
            state.done_items += 1
            if outcome not in ("rejected", "failed"):
                self.finished += 1
                self.finished_bytes += item.moved + item.resumed
            self._item_ended(item, outcome, detail)
            self._moved(item.phase)
            if item.phase == key:
                self.phase_finished(key, outcome)

    def task_kept(self, key: str, description: str, size: int, *, phase: str = "",
                  detail: str = "") -> None:
        with self._lock:
            phase = phase or key
            if phase not in self.phases:
                self.phases[phase] = Phase(description, implicit=True)
            state = self.phases[phase]
            state.kept += size
            state.known += size
            state.done_items += 1
            self.kept += 1
            self._item_ended(Item(phase, description, size, moved=size), "kept", detail)
            self._moved(phase)

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        print_warning(message)

    # -- what subclasses show -------------------------------------------------------------

    def _shown(self, phase: str) -> None:
        """A phase appeared."""

    def _moved(self, phase: str) -> None:
        """A phase's numbers changed."""

    def _sized(self, phase: str) -> None:
        """A phase learnt its size."""
        self._moved(phase)

    def _ended(self, phase: str, summary: str) -> None:
        """A phase ended."""

    def _item_ended(self, item: Item, outcome: str, detail: str) -> None:
        """An item ended (or was kept)."""

    def _waiting(self, item: Item, what: str) -> None:
        """An item waits for someone else."""


def to_move(state: Phase) -> int | None:
    """The bytes a phase moves now: its total less what was kept or resumed."""
    total = state.total if state.total is not None else state.known or None
    return None if total is None else max(total - state.kept - state.resumed, state.new)


def announced(state: Phase, before: str) -> str:
    """A phase's size as its first line (or the line when it learns it) says it:
    ``10.4 KiB in 8 files``."""
    size = human_size(state.total) if state.total is not None else ""
    items = f"{state.items} files" if state.items else ""
    if not size and not items:
        return ""
    return before + (f"{size} in {items}" if size and items else size or items)


def item_size(item: Item) -> str:
    """An item's size, and what of it a partial download held; nothing for an item
    that moves no bytes (a signature check)."""
    size = item.total if item.total is not None else item.moved + item.resumed
    if item.total is None and not size:
        return ""
    resumed = f" ({human_size(item.resumed)} resumed)" if item.resumed else ""
    return f"{human_size(size)}{resumed}"


def ending(phase: str, state: Phase, summary: str) -> str:
    """The line a phase ends with: how, then its files and bytes in the same terms its
    first line announced them (``done, 8/8 files, 10.4 KiB (2.4 KiB now, 8.0 KiB kept)``),
    so that the two can be compared."""
    held = state.new + state.resumed + state.kept
    if state.items is None and not state.done_items and not held:
        return f"{phase}: {summary}"  # a phase of no files (the check of the sources)
    files = f"{state.done_items}/{state.items}" if state.items else f"{state.done_items}"
    origins = ", ".join(p for p in (
        f"{human_size(state.new)} now" if state.new else "",
        f"{human_size(state.resumed)} resumed" if state.resumed else "",
        f"{human_size(state.kept)} kept" if state.kept else "") if p)
    return f"{phase}: {summary}, {files} files, {human_size(held)}" + (
        f" ({origins})" if origins else "")


def counts(state: Phase) -> str:
    parts = []
    if state.items:
        parts.append(f"{state.done_items}/{state.items}")
    if state.kept:
        parts.append(f"{human_size(state.kept)} kept")
    if state.resumed:
        parts.append(f"{human_size(state.resumed)} resumed")
    return ", ".join(parts)
