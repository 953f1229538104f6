"""The two ways progress is shown (:mod:`airgap.cli.progress` counts it): live lines at
a terminal, timestamped log lines in a pipe; and the access log of ``airgap serve``.

Any thread may report: what they write goes through :mod:`airgap.cli.output`, where a
reader that left (``2>&1 | head``) stops the run instead of failing the thread that wrote.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console, JustifyMethod
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

from airgap.cli.options import flags
from airgap.cli.output import STAMP_FORMAT, stderr, write
from airgap.cli.progress import (
    LOG_EVERY,
    CountingReporter,
    Item,
    announced,
    counts,
    ending,
    item_size,
    to_move,
)
from airgap.reporter import Reporter
from airgap.units import human_size

OUTCOME_MARKS = {"fetched": "✓", "verified": "✓", "done": "✓", "sent": "✓", "copied": "✓",
                  "kept": "=", "rejected": "✗", "failed": "✗", "unvouched": "?"}
OUTCOME_STYLES = {"rejected": "red", "failed": "red", "unvouched": "yellow", "kept": "dim"}


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
                                            total=to_move(state))

    def _moved(self, phase: str) -> None:
        state = self.phases[phase]
        if state.task is None:
            self._shown(phase)
        assert state.task is not None
        self.progress.update(state.task, total=to_move(state), completed=state.new,
                             note=counts(state) or state.description)

    def _ended(self, phase: str, summary: str) -> None:
        state = self.phases[phase]
        if state.task is not None:
            self.progress.remove_task(state.task)
            state.task = None
        if state.implicit:
            return  # its one item said it all
        self.console.print(Text(flags(ending(phase, state, summary)), style="bold"))

    def _item_ended(self, item: Item, outcome: str, detail: str) -> None:
        mark = OUTCOME_MARKS.get(outcome, "·")
        text = f"{mark} {outcome:<8} {item.description}  {item_size(item)}"
        self.console.print(Text(text + (f"  {flags(detail)}" if detail else ""),
                                style=OUTCOME_STYLES.get(outcome, "")))

    def _waiting(self, item: Item, what: str) -> None:
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
            write(out, f"{now}{flags(text)}\n")

    def _shown(self, phase: str) -> None:
        state = self.phases[phase]
        if state.implicit:
            return  # its item's own line comes when it ends
        self.line(f"{phase}: {state.description}{announced(state, ', ')}")

    def _sized(self, phase: str) -> None:
        self.line(f"{phase}: {announced(self.phases[phase], '')}")

    def _moved(self, phase: str) -> None:
        state = self.phases[phase]
        now = time.monotonic()
        if now - state.logged_at < self.every or state.new == state.logged_bytes \
                or state.finished:
            return
        speed = (state.new - state.logged_bytes) / (now - state.logged_at)
        state.logged_at, state.logged_bytes = now, state.new
        total = to_move(state)
        left = ""
        if total is not None and speed > 0:
            left = f", about {datetime.timedelta(seconds=int((total - state.new) / speed))} left"
        of = f" of {human_size(total)}" if total is not None else ""
        self.line(f"{phase}: {human_size(state.new)}{of}, {human_size(int(speed))}/s{left}"
                  + (f" ({counts(state)})" if counts(state) else ""))

    def _ended(self, phase: str, summary: str) -> None:
        state = self.phases[phase]
        if state.implicit:
            return
        self.line(ending(phase, state, summary))

    def _item_ended(self, item: Item, outcome: str, detail: str) -> None:
        self.line(" ".join(p for p in (outcome, item.description, item_size(item), detail) if p))

    def _waiting(self, item: Item, what: str) -> None:
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
