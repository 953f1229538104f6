"""Progress on the terminal: what core code reports through :class:`~airgap.reporter.Reporter`.

:func:`make_reporter` backs it with rich on a terminal, and with warnings only otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from airgap.cli.options import flags
from airgap.cli.render import human_size, print_warning, stderr
from airgap.reporter import NullReporter, Reporter


class RichReporter:
    """One live progress display for a whole run: a total line (bytes, rate, ETA) and a
    line per item in flight; a line is printed as each item ends."""

    def __init__(self, console: Console = stderr) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=30),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self._sizes: dict[str, int | None] = {}
        self._total = self.progress.add_task("[bold]total", total=0)

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def task_started(self, key: str, description: str, total: int | None) -> None:
        with self._lock:
            if key in self._tasks:
                return
            self._tasks[key] = self.progress.add_task(description, total=total)
            self._sizes[key] = total
            grand = self.progress.tasks[self._total].total or 0
            self.progress.update(self._total, total=grand + (total or 0))

    def task_advanced(self, key: str, nbytes: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self.progress.advance(task, nbytes)
            self.progress.advance(self._total, nbytes)

    def task_restarted(self, key: str, completed: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            done = self.progress.tasks[task].completed
            self.progress.update(task, completed=completed)
            self.progress.advance(self._total, completed - done)

    def task_finished(self, key: str, outcome: str) -> None:
        with self._lock:
            task = self._tasks.pop(key, None)
            size = self._sizes.pop(key, None)
        if task is None:
            return
        description = self.progress.tasks[task].description
        self.progress.remove_task(task)
        style = {"done": "green", "kept": "dim", "rejected": "red", "failed": "red"}
        mark = {"done": "✓", "kept": "=", "rejected": "✗", "failed": "✗"}.get(outcome, "·")
        amount = f"  {human_size(size)}" if size else ""
        self.console.print(Text(f"{mark} {outcome:<8} {description}{amount}",
                                style=style.get(outcome, "")))

    def info(self, message: str) -> None:
        self.console.print(flags(message), highlight=False)

    def warning(self, message: str) -> None:
        self.console.print(Text("warning: ", style="bold yellow") + Text(flags(message)))


class LineReporter(NullReporter):
    """Plain lines on stderr for long-running services: information and warnings."""

    def info(self, message: str) -> None:
        stderr.print(flags(message), highlight=False)

    def warning(self, message: str) -> None:
        print_warning(message)


def access_logger() -> logging.Logger:
    """The access log of ``airgap serve``: one timestamped line per request, on stderr."""
    logger = logging.getLogger("airgap.serve.access")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class WarningReporter(NullReporter):
    """For pipes and logs: no progress, but warnings still reach stderr."""

    def warning(self, message: str) -> None:
        print_warning(message)


@contextlib.contextmanager
def make_reporter(quiet: bool) -> Iterator[Reporter]:
    """Rich progress on a terminal; warnings only when piped or with ``--quiet`` (which
    hides progress, never a warning such as --skip-verify's)."""
    if stderr.is_terminal and not quiet:
        with RichReporter() as reporter:
            yield reporter
    else:
        yield WarningReporter()
