"""Progress as a person sees it: what core code reports through :class:`~airgap.reporter.Reporter`.

At a terminal (:class:`TerminalReporter`) one live line per phase (bytes of known
totals, speed and time left, as ``docker pull`` and ``skopeo copy`` show them) and a
line for each item as it ends. Into a pipe or a log (:class:`LogReporter`) plain lines,
never wrapped, one event each with a UTC time, and every 30 seconds a progress line per
busy phase. Both keep count of what was done, for the line an interruption prints.
Bytes are shown apart by where they came from: fetched now, resumed from a partial
download, kept from an earlier run.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console, JustifyMethod
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from airgap.cli.options import flags
from airgap.cli.render import STAMP_FORMAT, print_warning, stderr
from airgap.reporter import Reporter
from airgap.units import human_size

#: How often a log gets a progress line for a phase that is moving bytes.
LOG_EVERY = 30.0
_OUTCOME_MARKS = {"fetched": "✓", "verified": "✓", "done": "✓", "sent": "✓", "copied": "✓",
                  "kept": "=", "rejected": "✗", "failed": "✗", "unvouched": "?"}
_OUTCOME_STYLES = {"rejected": "red", "failed": "red", "unvouched": "yellow", "kept": "dim"}


@dataclass
class _Phase:
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
class _Item:
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
        self.phases: dict[str, _Phase] = {}
        self.items: dict[str, _Item] = {}
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
            self.phases[phase] = _Phase(description, total, items)
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
                self.phases[phase] = _Phase(description, total, implicit=True)
                self._shown(phase)
            self.items[key] = _Item(phase, description, total, resumed)
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
                self.phases[phase] = _Phase(description, implicit=True)
            state = self.phases[phase]
            state.kept += size
            state.known += size
            state.done_items += 1
            self.kept += 1
            self._item_ended(_Item(phase, description, size, moved=size), "kept", detail)
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

    def _item_ended(self, item: _Item, outcome: str, detail: str) -> None:
        """An item ended (or was kept)."""

    def _waiting(self, item: _Item, what: str) -> None:
        """An item waits for someone else."""


def _to_move(state: _Phase) -> int | None:
    """The bytes a phase moves now: its total less what was kept or resumed."""
    total = state.total if state.total is not None else state.known or None
    return None if total is None else max(total - state.kept - state.resumed, state.new)


def _announced(state: _Phase, before: str) -> str:
    """A phase's size as its first line (or the line when it learns it) says it:
    ``10.4 KiB in 8 files``."""
    size = human_size(state.total) if state.total is not None else ""
    items = f"{state.items} files" if state.items else ""
    if not size and not items:
        return ""
    return before + (f"{size} in {items}" if size and items else size or items)


def _size(item: _Item) -> str:
    """An item's size, and what of it a partial download held; nothing for an item
    that moves no bytes (a signature check)."""
    size = item.total if item.total is not None else item.moved + item.resumed
    if item.total is None and not size:
        return ""
    resumed = f" ({human_size(item.resumed)} resumed)" if item.resumed else ""
    return f"{human_size(size)}{resumed}"


def _ending(phase: str, state: _Phase, summary: str) -> str:
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


def _counts(state: _Phase) -> str:
    parts = []
    if state.items:
        parts.append(f"{state.done_items}/{state.items}")
    if state.kept:
        parts.append(f"{human_size(state.kept)} kept")
    if state.resumed:
        parts.append(f"{human_size(state.resumed)} resumed")
    return ", ".join(parts)


def _fixed(*, width: int | None = None, min_width: int | None = None,
           justify: JustifyMethod = "left", ratio: int | None = None) -> Column:
    """A column of the live lines that never wraps: what does not fit ends in an ellipsis."""
    return Column(width=width, min_width=min_width, justify=justify, ratio=ratio,
                  no_wrap=True, overflow="ellipsis")


class _Bytes(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text(human_size(int(task.completed)) if task.completed else "")
        return Text(f"{human_size(int(task.completed))}/{human_size(int(task.total))}")


class _Speed(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{human_size(int(speed))}/s" if speed else "")


class _Left(ProgressColumn):
    def render(self, task: Task) -> Text:
        remaining = task.time_remaining
        if remaining is None or task.finished:
            return Text("")
        return Text(str(datetime.timedelta(seconds=int(remaining))))


class TerminalReporter(CountingReporter):
    """A live line per phase, and a line printed for each item as it ends."""

    def __init__(self, console: Console = stderr) -> None:
        super().__init__()
        self.console = console
        self.progress = Progress(
            TextColumn("{task.fields[name]}", table_column=_fixed(width=10)),
            BarColumn(bar_width=24, table_column=_fixed(width=24)),
            _Bytes(table_column=_fixed(min_width=21, justify="right")),
            _Speed(table_column=_fixed(min_width=11, justify="right")),
            _Left(table_column=_fixed(min_width=8, justify="right")),
            TextColumn("{task.fields[note]}", table_column=_fixed(ratio=1)),
            console=console, transient=True, refresh_per_second=8, expand=True)

    def __enter__(self) -> TerminalReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _shown(self, phase: str) -> None:
        state = self.phases[phase]
        name = state.description.split(" ", 1)[0] if state.implicit else phase
        state.task = self.progress.add_task("", name=name[:10], note=state.description,
                                            total=_to_move(state))

    def _moved(self, phase: str) -> None:
        state = self.phases[phase]
        if state.task is None:
            self._shown(phase)
        assert state.task is not None
        self.progress.update(state.task, total=_to_move(state), completed=state.new,
                             note=_counts(state) or state.description)

    def _ended(self, phase: str, summary: str) -> None:
        state = self.phases[phase]
        if state.task is not None:
            self.progress.remove_task(state.task)
            state.task = None
        if state.implicit:
            return  # its one item said it all
        self.console.print(Text(flags(_ending(phase, state, summary)), style="bold"))

    def _item_ended(self, item: _Item, outcome: str, detail: str) -> None:
        mark = _OUTCOME_MARKS.get(outcome, "·")
        text = f"{mark} {outcome:<8} {item.description}  {_size(item)}"
        self.console.print(Text(text + (f"  {flags(detail)}" if detail else ""),
                                style=_OUTCOME_STYLES.get(outcome, "")))

    def _waiting(self, item: _Item, what: str) -> None:
        state = self.phases[item.phase]
        if state.task is not None:
            self.progress.update(state.task, note=what)

    def info(self, message: str) -> None:
        self.console.print(Text(flags(message)))

    def warning(self, message: str) -> None:
        self.console.print(Text("warning: ", style="bold yellow") + Text(flags(message)))


class LogReporter(CountingReporter):
    """Plain lines for a pipe or a log file: a UTC time, then one event."""

    def __init__(self, out: TextIO | None = None, every: float = LOG_EVERY) -> None:
        super().__init__()
        self.out = out
        self.every = every

    def line(self, text: str) -> None:
        """Write one line, now."""
        now = datetime.datetime.now(datetime.UTC).strftime(STAMP_FORMAT)
        out = self.out or sys.stderr
        with self._lock:
            out.write(f"{now}{flags(text)}\n")
            out.flush()

    def _shown(self, phase: str) -> None:
        state = self.phases[phase]
        if state.implicit:
            return  # its item's own line comes when it ends
        self.line(f"{phase}: {state.description}{_announced(state, ', ')}")

    def _sized(self, phase: str) -> None:
        self.line(f"{phase}: {_announced(self.phases[phase], '')}")

    def _moved(self, phase: str) -> None:
        state = self.phases[phase]
        now = time.monotonic()
        if now - state.logged_at < self.every or state.new == state.logged_bytes \
                or state.finished:
            return
        speed = (state.new - state.logged_bytes) / (now - state.logged_at)
        state.logged_at, state.logged_bytes = now, state.new
        total = _to_move(state)
        left = ""
        if total is not None and speed > 0:
            left = f", about {datetime.timedelta(seconds=int((total - state.new) / speed))} left"
        of = f" of {human_size(total)}" if total is not None else ""
        self.line(f"{phase}: {human_size(state.new)}{of}, {human_size(int(speed))}/s{left}"
                  + (f" ({_counts(state)})" if _counts(state) else ""))

    def _ended(self, phase: str, summary: str) -> None:
        state = self.phases[phase]
        if state.implicit:
            return
        self.line(_ending(phase, state, summary))

    def _item_ended(self, item: _Item, outcome: str, detail: str) -> None:
        self.line(" ".join(p for p in (outcome, item.description, _size(item), detail) if p))

    def _waiting(self, item: _Item, what: str) -> None:
        self.line(f"{item.description}: {what}")

    def info(self, message: str) -> None:
        self.line(message)

    def warning(self, message: str) -> None:
        self.line(f"warning: {message}")


def access_logger() -> logging.Logger:
    """The access log of ``airgap serve``: one timestamped line per request, on stderr."""
    logger = logging.getLogger("airgap.serve.access")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s",
                                               "%Y-%m-%dT%H:%M:%SZ"))
        handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


@contextlib.contextmanager
def make_reporter(quiet: bool) -> Iterator[CountingReporter]:
    """A live display at a terminal, log lines otherwise; only warnings with ``quiet``
    (which hides progress, never a warning such as --skip-verify's)."""
    if quiet:
        yield CountingReporter()
    elif stderr.is_terminal:
        with TerminalReporter() as reporter:
            yield reporter
    else:
        yield LogReporter()


def service_reporter(quiet: bool) -> Reporter:
    """For a long-running service (``airgap serve``): its lines, or only warnings."""
    return CountingReporter() if quiet else LogReporter()
