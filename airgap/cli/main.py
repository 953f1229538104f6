"""The ``airgap`` program: run a command and turn every outcome into an exit code.

Errors become exit codes here and nowhere else (:func:`main`): 0 ok, 1 failed, 2 usage
or manifest error, 3 verification failed, 130 interrupted (SIGINT), 143 terminated
(SIGTERM). An interruption prints one line saying what was kept; an error that is no
:class:`~airgap.errors.AirgapError` is a bug, shown as one line (the trace with
``--debug`` or ``AIRGAP_DEBUG=1``), never as a traceback alone.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import NoReturn

import click

from airgap.cli import (
    commands,  # noqa: F401 - defines the commands of the group
    render,
)
from airgap.cli.group import Stopped, cli
from airgap.cli.session import Session
from airgap.errors import AirgapError, ExitCode, FileSystemError, UsageError


class Terminated(KeyboardInterrupt):
    """SIGTERM: everything stops as for Ctrl-C, and the exit code is 143."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and turn every outcome into an exit code."""
    session = Session(debug=os.environ.get("AIRGAP_DEBUG", "") not in ("", "0"))
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        try:
            return _run(argv, session)
        except Terminated:  # came while the outcome was being shown: end, quietly
            return ExitCode.TERMINATED
        except KeyboardInterrupt:
            return ExitCode.INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None, session: Session) -> int:
    try:
        cli.main(args=argv, prog_name="airgap", standalone_mode=False, obj=session)
    except Stopped as exc:
        if render.stderr.is_terminal:
            render.stderr.print()  # closes the terminal's ^C echo
        if isinstance(exc.__cause__, Terminated):
            return _interrupted(session, ExitCode.TERMINATED, "terminated")
        return _interrupted(session, ExitCode.INTERRUPTED, "interrupted")
    except click.exceptions.Abort as exc:  # click's name for a KeyboardInterrupt
        if isinstance(exc.__cause__, Terminated):
            return _interrupted(session, ExitCode.TERMINATED, "terminated")
        return _interrupted(session, ExitCode.INTERRUPTED, "interrupted")
    except click.ClickException as exc:
        code = ExitCode.USAGE if exc.exit_code == 2 else exc.exit_code
        args = sys.argv[1:] if argv is None else argv
        if "--json" in args and not session.json_printed:  # asked for, though not parsed
            context = exc.ctx if isinstance(exc, click.UsageError) else None
            command = session.command or (context.info_name if context else None) or "airgap"
            helped = "airgap --help" if command == "airgap" else f"airgap {command} --help"
            render.print_json(render.envelope(command, code, error=UsageError(
                exc.format_message(), details=[f"see {helped}"])))
            session.json_printed = True
        render.print_usage_error(exc)
        return code
    except AirgapError as exc:
        return _failed(session, exc)
    except OSError as exc:
        # A local file operation failed where no module had a better message for it.
        return _failed(session, FileSystemError.from_os_error(exc))
    except Terminated:
        return _interrupted(session, ExitCode.TERMINATED, "terminated")
    except KeyboardInterrupt:
        return _interrupted(session, ExitCode.INTERRUPTED, "interrupted")
    except Exception as exc:
        if session.debug:
            traceback.print_exc()
        name = type(exc).__name__
        error = AirgapError(f"unexpected {name}: {exc}" if str(exc) else f"unexpected {name}",
                            details=["this is a bug in airgap: run the same command with "
                                     "AIRGAP_DEBUG=1 (or --debug) for the whole trace, and "
                                     "report it with that output"])
        return _failed(session, error)
    return ExitCode.OK


def _failed(session: Session, error: AirgapError) -> int:
    if session.debug and error.__traceback__ is not None:
        traceback.print_exception(error)
    if session.json and not session.json_printed:
        render.print_json(render.envelope(session.command, error.exit_code, error=error))
        session.json_printed = True
    render.print_error(error)
    return int(error.exit_code)


def _interrupted(session: Session, code: ExitCode, how: str) -> int:
    done = session.reporter.summary() if session.reporter is not None else ""
    render.print_note(f"{how}: " + "; ".join(p for p in (done, session.on_interrupt) if p))
    if session.json and not session.json_printed:
        render.print_json(render.envelope(session.command, code, error=AirgapError(
            f"{how}: {session.on_interrupt}")))
    return int(code)


def run() -> NoReturn:
    """The ``airgap`` program: :func:`main`, then exit with its code."""
    code = main()
    if any(t.name.startswith("airgap") and t.is_alive() for t in threading.enumerate()):
        # Work a Ctrl-C or a failure stopped, still blocked after its grace period (a
        # read from a stalled server lasts until the read timeout): it only ever writes
        # .part files, and the kernel releases the bundle lock, so do not wait for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
