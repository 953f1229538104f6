"""The ``airgap`` program: run a command and turn every outcome into an exit code.

Errors become exit codes here and nowhere else (:func:`main`): 0 ok, 1 failed,
2 usage or manifest error, 3 verification failed, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import NoReturn

import click

from airgap.cli import render
from airgap.cli.commands import cli
from airgap.errors import AirgapError, ExitCode, FileSystemError


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and turn every outcome into an exit code."""
    try:
        cli.main(args=argv, prog_name="airgap", standalone_mode=False)
    except click.exceptions.Abort:
        render.stderr.print("aborted")
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE if exc.exit_code == 2 else exc.exit_code
    except AirgapError as exc:
        render.print_error(exc)
        return int(exc.exit_code)
    except OSError as exc:
        # A local file operation failed where no module had a better message for it.
        error = FileSystemError.from_os_error(exc)
        render.print_error(error)
        return int(error.exit_code)
    except KeyboardInterrupt:
        render.stderr.print("interrupted")
        return ExitCode.INTERRUPTED
    return ExitCode.OK


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
