"""How the CLI writes: the two consoles, a line on stdout, errors, warnings and notes on
stderr (each stamped with its UTC time in a log), the ``--json`` envelope, and the two
shapes a report takes (key-value facts and tables), each a rich layout at a terminal and
plain unwrapped lines in a pipe. Settings named by core messages
(:func:`airgap.errors.setting`) are shown as the options that set them.

Every write goes through :func:`write` (or a console of :class:`_Console`), safe from
any thread: the first that finds what read stdout or stderr gone (``| head -2``, a
``tee`` killed) stops the run as a Ctrl-C does, and nothing more is written;
:func:`airgap.cli.main.main` then ends it quietly with 141, as SIGPIPE ends a program.
"""

from __future__ import annotations

import datetime
import io
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from airgap.cli.options import flags
from airgap.errors import AirgapError, ExitCode


class OutputClosed(KeyboardInterrupt):
    """What read stdout or stderr stopped reading: raised in the main thread at its first
    broken write, so that the run stops as for a Ctrl-C (what it leaves is what a Ctrl-C
    leaves: ``.part`` files, the lock released), and ends with 141."""


_closed = threading.Event()
_closing = threading.Lock()


def closed() -> bool:
    """Whether what read stdout or stderr has gone: nothing more is written."""
    return _closed.is_set()


def reopen() -> None:
    """A new run writes again (:func:`airgap.cli.main.main` called more than once in a
    process, as tests do)."""
    _closed.clear()


def reader_gone() -> None:
    """A write found its pipe without a reader. The first time, the run is stopped: in
    the main thread by :class:`OutputClosed` at once; from any other thread (a download
    reporting progress) by interrupting the main thread as a Ctrl-C does, while the
    thread that wrote goes on until its work is stopped, its writes dropped."""
    with _closing:
        first = not _closed.is_set()
        _closed.set()
    if not first:
        return
    if threading.current_thread() is threading.main_thread():
        raise OutputClosed
    # A real signal, not only a flag: it also ends a system call the main thread waits in.
    main = threading.main_thread().ident
    if callable(signal.getsignal(signal.SIGINT)) and main is not None:
        signal.pthread_kill(main, signal.SIGINT)


def write(stream: TextIO, text: str) -> None:
    """Write ``text`` to ``stream`` and flush it, from any thread; nothing once what
    reads stdout or stderr is gone (:func:`reader_gone`)."""
    if _closed.is_set():
        return
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        reader_gone()


class _Console(Console):
    """A rich console that writes nothing once what reads the output is gone, and takes
    a broken pipe as :func:`reader_gone` says (rich's own way ends the thread that wrote
    with ``SystemExit(1)``)."""

    def print(self, *objects: Any, **options: Any) -> None:
        if not _closed.is_set():
            super().print(*objects, **options)

    def on_broken_pipe(self) -> None:
        reader_gone()


stdout = _Console(highlight=False, soft_wrap=False)
stderr = _Console(stderr=True, highlight=False, soft_wrap=True)
#: How a line of a log begins: its UTC time.
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ "
#: The version of the ``--json`` envelope (docs/user-guide.md, "Scripts and logs").
ENVELOPE_FORMAT = 1


def _with_flags(data: Any) -> Any:
    """``data`` with the settings its strings name shown as options, all the way down."""
    if isinstance(data, str):
        return flags(data)
    if isinstance(data, dict):
        return {key: _with_flags(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_with_flags(value) for value in data]
    return data


def envelope(command: str, exit_code: int, result: Any = None, *,
             problems: Sequence[Any] = (), warnings: Sequence[str] = (),
             error: AirgapError | None = None) -> dict[str, Any]:
    """The one ``--json`` document every command prints: what it did (``result``), what
    is wrong with it (``problems``), and the error that stopped it."""
    return {
        "format": ENVELOPE_FORMAT,
        "command": command,
        "status": "ok" if exit_code == ExitCode.OK else "verification-failed"
        if exit_code == ExitCode.VERIFICATION else "failed",
        "exit_code": exit_code,
        "result": result,
        "problems": list(problems),
        "warnings": list(warnings),
        "error": None if error is None else {"message": error.message,
                                             "details": list(error.details),
                                             "kind": type(error).__name__},
    }


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout, uncoloured so it pipes cleanly."""
    write(sys.stdout, json.dumps(_with_flags(data), indent=2, sort_keys=False) + "\n")


def stamp() -> str:
    """What begins a line on stderr: nothing at a terminal, its UTC time in a log
    (``2026-12-01T23:56:47Z ``), so that every line of a log says when it happened."""
    if stderr.is_terminal:
        return ""
    return datetime.datetime.now(datetime.UTC).strftime(STAMP_FORMAT)


def print_error(exc: AirgapError) -> None:
    """Show an error on stderr: the message, then one indented line per detail."""
    stderr.print(Text(stamp()) + Text("error: ", style="bold red") + Text(flags(exc.message)))
    for detail in exc.details:
        for line in flags(detail).splitlines():  # ManyErrors' details are indented blocks
            stderr.print(Text(f"{stamp()}  {line}"))


def print_warning(message: str) -> None:
    """Show a warning on stderr."""
    stderr.print(Text(stamp()) + Text("warning: ", style="bold yellow") + Text(flags(message)))


def print_note(message: str) -> None:
    """Show one line on stderr as it is (no markup), with its time in a log."""
    stderr.print(Text(stamp() + message))


def print_usage_error(error: click.ClickException) -> None:
    """Show a usage error as click does; in a log, each of its lines with its time."""
    if stderr.is_terminal:
        error.show()
        return
    shown = io.StringIO()
    error.show(file=shown)
    for text in shown.getvalue().splitlines():
        if text.strip():
            print_note(text)


def line(text: str) -> None:
    """One line on stdout, as it is: never wrapped, never styled."""
    write(sys.stdout, flags(text) + "\n")


def terminal() -> bool:
    return stdout.is_terminal


def facts(rows: Sequence[tuple[str, str]]) -> None:
    """Key and value pairs: a grid at a terminal, ``key: value`` lines otherwise."""
    if not terminal():
        for key, value in rows:
            line(f"{key.strip()}: {value}")
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(f"  {key}", flags(value))
    stdout.print(grid)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], kind: str,
           right: Sequence[str] = ()) -> None:
    """A table at a terminal; in a pipe, the title, then ``kind`` and the row's cells on
    one line each."""
    if not terminal():
        line(title)
        for row in rows:
            line(" ".join([kind, *(cell for cell in row if cell)]))
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", justify="right" if column in right else "left")
    for row in rows:
        table.add_row(*(flags(cell) for cell in row))
    stdout.print(table)
