"""The ``airgap`` program: run a command and turn every outcome into an exit code.

Errors become exit codes here and nowhere else (:func:`main`): 0 ok, 1 failed, 2 usage
or manifest error, 3 verification failed, 129 hung up (SIGHUP), 130 interrupted
(SIGINT), 141 output closed (a pipe nobody reads), 143 terminated (SIGTERM). An
interruption prints one line saying what was kept; output nobody reads any more, found
by any thread (:func:`airgap.cli.output.reader_gone`), ends the run with 141 and nothing
more written; an error that is no
:class:`~airgap.errors.AirgapError` is a bug, shown as one line (the trace with
``--debug`` or ``AIRGAP_DEBUG=1``), never as a traceback alone.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import NoReturn, TextIO

import click

from airgap.cli import (
    commands,  # noqa: F401 - defines the commands of the group
    output,
)
from airgap.cli.group import PipeClosed, Stopped, cli
from airgap.cli.session import Session
from airgap.errors import AirgapError, ExitCode, FileSystemError, UsageError, left_by


class Terminated(KeyboardInterrupt):
    """SIGTERM: everything stops as for Ctrl-C, and the exit code is 143."""

    code, how = ExitCode.TERMINATED, "terminated"


class HungUp(Terminated):
    """SIGHUP (the terminal or the ssh session is gone): as SIGTERM, exit code 129."""

    code, how = ExitCode.HUNG_UP, "hung up"


_SIGNALS = {signal.SIGTERM: Terminated, signal.SIGHUP: HungUp}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _SIGNALS[signal.Signals(signum)]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and turn every outcome into an exit code."""
    session = Session(debug=os.environ.get("AIRGAP_DEBUG", "") not in ("", "0"))
    in_main = threading.current_thread() is threading.main_thread()
    output.reopen()
    previous = {}
    if in_main:
        previous = {signum: signal.signal(signum, _terminate) for signum in _SIGNALS}
    try:
        try:
            code = _run(argv, session)
        except Terminated as stopped:  # came while the outcome was shown: end, quietly
            code = stopped.code
        except KeyboardInterrupt:
            code = ExitCode.INTERRUPTED
        except BrokenPipeError:  # while the outcome (or an error) was shown
            code = _pipe_closed() or ExitCode.FAILED
        if output.closed():  # whatever thread found it out, and however the run ended
            if in_main:  # the interruption a thread sent may still be on its way: the
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # process ends now anyway
            code = _pipe_closed() or ExitCode.PIPE_CLOSED
        return code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(argv: list[str] | None, session: Session) -> int:
    try:
        cli.main(args=argv, prog_name="airgap", standalone_mode=False, obj=session)
    except (Stopped, click.exceptions.Abort) as exc:  # Abort: click's KeyboardInterrupt
        if isinstance(exc, Stopped) and output.stderr.is_terminal:
            output.stderr.print()  # closes the terminal's ^C echo
        return _interrupted(session, exc.__cause__)
    except PipeClosed as exc:
        if _pipe_closed():
            return ExitCode.PIPE_CLOSED
        cause = exc.__cause__  # a pipe airgap wrote to (a child's), not its own output
        return _failed(session, FileSystemError.from_os_error(
            cause if isinstance(cause, OSError) else BrokenPipeError()))
    except click.ClickException as exc:
        code = ExitCode.USAGE if exc.exit_code == 2 else exc.exit_code
        args = sys.argv[1:] if argv is None else argv
        if "--json" in args and not session.json_printed:  # asked for, though not parsed
            context = exc.ctx if isinstance(exc, click.UsageError) else None
            command = session.command or (context.info_name if context else None) or "airgap"
            helped = "airgap --help" if command == "airgap" else f"airgap {command} --help"
            output.print_json(output.envelope(command, code, error=UsageError(
                exc.format_message(), details=[f"see {helped}"])))
            session.json_printed = True
        output.print_usage_error(exc)
        return code
    except AirgapError as exc:
        return _failed(session, exc)
    except OSError as exc:
        # A local file operation failed where no module had a better message for it.
        return _failed(session, FileSystemError.from_os_error(exc))
    except KeyboardInterrupt as exc:
        return _interrupted(session, exc)
    except Exception as exc:
        if session.debug and not output.closed():
            traceback.print_exc()
        name = type(exc).__name__
        error = AirgapError(f"unexpected {name}: {exc}" if str(exc) else f"unexpected {name}",
                            details=["this is a bug in airgap: run the same command with "
                                     "AIRGAP_DEBUG=1 (or --debug) for the whole trace, and "
                                     "report it with that output"])
        return _failed(session, error)
    return ExitCode.OK


def _failed(session: Session, error: AirgapError) -> int:
    if output.closed():  # what stopped it came after, or of, the reader's leaving
        return ExitCode.PIPE_CLOSED
    if session.debug and error.__traceback__ is not None:
        _print_chain(error)
    if session.json and not session.json_printed:
        output.print_json(output.envelope(session.command, error.exit_code, error=error))
        session.json_printed = True
    output.print_error(error)
    return int(error.exit_code)


def _print_chain(error: BaseException) -> None:
    """The trace of ``error`` and of every error that led to it, those it was raised
    ``from None`` over too: a message written for the user hides them, --debug must not."""
    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__suppress_context__ = False
        current = current.__cause__ or current.__context__
    traceback.print_exception(error)


def _interrupted(session: Session, cause: BaseException | None) -> int:
    """One line saying what was kept (and what the work it stopped undid for it, such as
    a replaced container put back); the code of the signal that stopped the run."""
    if output.closed():
        return ExitCode.PIPE_CLOSED
    code, how = (cause.code, cause.how) if isinstance(cause, Terminated) else \
        (ExitCode.INTERRUPTED, "interrupted")
    done = session.reporter.summary() if session.reporter is not None else ""
    undone = left_by(cause)
    try:
        output.print_note(f"{how}: " + "; ".join(p for p in (done, *undone,
                                                             session.on_interrupt) if p))
        if session.json and not session.json_printed:
            output.print_json(output.envelope(session.command, code, error=AirgapError(
                f"{how}: {session.on_interrupt}", details=undone)))
    except OSError:
        pass  # a hung-up terminal, a closed pipe: nobody is left to read it
    return int(code)


def _pipe_closed() -> int:
    """Whatever read stdout or stderr stopped reading (``| head -1``): end quietly, as a
    program SIGPIPE ends, once what is still to be written can go nowhere. 0 when
    neither is such a pipe (the broken pipe was another)."""
    closed = [stream for stream in (sys.stdout, sys.stderr) if _unread(stream)]
    if not closed:
        return 0
    nowhere = os.open(os.devnull, os.O_WRONLY)
    for stream in closed:
        os.dup2(nowhere, stream.fileno())
    os.close(nowhere)
    return ExitCode.PIPE_CLOSED


def _unread(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe whose reading end is closed (poll says POLLERR)."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def run() -> NoReturn:
    """The ``airgap`` program: :func:`main`, then exit with its code."""
    code = main()
    # The outcome is decided: a late Ctrl-C, or the interruption a thread sends when it
    # finds the output gone (output.reader_gone), must not end it with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if any(t.name.startswith("airgap") and t.is_alive() for t in threading.enumerate()):
        # Work a Ctrl-C or a failure stopped, still blocked after its grace period (a
        # read from a stalled server lasts until the read timeout): it only ever writes
        # .part files, and the kernel releases the bundle lock, so do not wait for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
