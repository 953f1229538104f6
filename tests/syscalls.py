"""Faults at one file's system calls, injected by strace (a real program, as the peers are)
into ``airgap`` run as a person runs it: an open that takes seconds, so that Ctrl-C or
SIGTERM lands while a command works on that file, and a SIGKILL at the open or the rename
of one file, so that a kill lands exactly between two steps, as a power cut can.

Each function returns the words to put before ``python -m airgap ...``
(:func:`tests.terminal.at_terminal` and :func:`tests.terminal.in_pipe` take them as
``prefix``); strace blocks the signals a terminal sends (it writes to a file, ``-o``), so
Ctrl-C reaches airgap alone, and :func:`traced` finds airgap's pid to signal it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

from tests.conftest import require_programs

# Not --seccomp-bpf: strace 6.1 then neither injects at a --trace-path nor delays reliably.
_STRACE = ("strace", "--follow-forks", "-qq", "--output=/dev/null", "--interruptible=3")
_CALLS = {"open": "openat", "rename": "rename,renameat,renameat2"}


def slow_open(path: Path, seconds: float) -> tuple[str, ...]:
    """Every open of ``path`` takes ``seconds`` more."""
    require_programs("strace")
    return (*_STRACE, f"--trace={_CALLS['open']}",
            f"--inject={_CALLS['open']}:delay_exit={int(seconds * 1_000_000)}",
            f"--trace-path={path}")


def failing_open(path: Path, error: str = "EACCES") -> tuple[str, ...]:
    """Every open of ``path`` fails with ``error``, as on a medium that went bad or a file
    whose permissions refuse airgap (root is never refused a permission)."""
    require_programs("strace")
    return (*_STRACE, f"--trace={_CALLS['open']}", f"--inject={_CALLS['open']}:error={error}",
            f"--trace-path={path}")


def kill_at(call: str, path: Path) -> tuple[str, ...]:
    """SIGKILL at the first ``call`` (``open`` or ``rename``) of ``path``, before it is
    done: what was written until then stays, nothing after."""
    require_programs("strace")
    return (*_STRACE, f"--trace={_CALLS[call]}",
            f"--inject={_CALLS[call]}:signal=SIGKILL:when=1", f"--trace-path={path}")


def traced(strace_pid: int, timeout: float = 30) -> int:
    """The pid of the program strace ``strace_pid`` runs, once it runs."""
    children = Path(f"/proc/{strace_pid}/task/{strace_pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Not a child strace forks to probe the kernel (it runs strace's own command line).
        for child in children.read_text().split() if children.exists() else []:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0] == \
                        sys.executable.encode():
                    return int(child)
        time.sleep(0.02)
    raise AssertionError(f"strace {strace_pid} started nothing in {timeout} s")
