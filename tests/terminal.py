"""airgap as a person runs it: at a terminal (a pseudo-terminal, its screen rendered by
pyte) or into a pipe, with what they see checked."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pexpect
import pyte

from tests.conftest import REPO

COLUMNS, ROWS = 120, 40


class _Screen(pyte.Screen):  # type: ignore[misc]
    """A screen that remembers which of its rows the terminal wrapped into the next."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.wrapped: set[int] = set()

    def draw(self, data: str) -> None:
        for char in data:
            if self.cursor.x == self.columns and pyte.modes.DECAWM in self.mode:
                self.wrapped.add(self.cursor.y)
            super().draw(char)

    def erase_in_line(self, how: int = 0, private: bool = False) -> None:
        self.wrapped.discard(self.cursor.y)
        super().erase_in_line(how, private)


@dataclass(frozen=True)
class Seen:
    """What a run left: its exit code, every byte it wrote, and the screen at the end
    (``wrapped``: the rows the terminal continued on the next)."""

    code: int
    raw: str
    screen: list[str]
    wrapped: frozenset[int] = frozenset()

    @property
    def text(self) -> str:
        """The final screen, its lines joined."""
        return "\n".join(self.lines)

    @property
    def lines(self) -> list[str]:
        """The lines of the final screen, each as it was printed: a line the terminal
        wrapped at its width is whole again."""
        joined: list[str] = []
        continued = False
        for number, row in enumerate(self.screen):
            if continued and joined:
                joined[-1] += row
            else:
                joined.append(row)
            continued = number in self.wrapped
        return joined

    @property
    def drawn(self) -> str:
        """Every byte written, without the terminal's control sequences: what the live
        lines showed on their way."""
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", self.raw)

    def assert_no_traceback(self) -> None:
        assert "Traceback" not in self.raw, self.raw[-3000:]


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return {**env, "PYTHONPATH": str(REPO), "TERM": "xterm-256color", **(extra or {})}


def at_terminal(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
                when: Callable[[pexpect.spawn], None] | None = None,
                prefix: Sequence[str] = ()) -> Seen:
    """Run ``airgap ARGS`` in a pseudo-terminal of 120x40 and render what it drew;
    ``when`` may drive the terminal meanwhile (wait for a line, type, send a signal);
    ``prefix`` runs it under another program (tests/syscalls.py's faults)."""
    log = io.BytesIO()
    command = [*prefix, sys.executable, "-m", "airgap", *args]
    child = pexpect.spawn(command[0], command[1:], cwd=str(REPO),
                          env=_env(env), dimensions=(ROWS, COLUMNS), timeout=timeout)
    child.logfile_read = log
    try:
        if when is not None:
            when(child)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    data = log.getvalue()
    screen = _Screen(COLUMNS, 500)
    pyte.ByteStream(screen).feed(data)
    # A wrapped row keeps its trailing spaces: they are part of the line it continues.
    lines = [line if number in screen.wrapped else line.rstrip()
             for number, line in enumerate(screen.display)]
    while lines and not lines[-1]:
        lines.pop()
    code = child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)
    return Seen(code, data.decode(errors="replace"), lines, frozenset(screen.wrapped))


def in_pipe(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
            stdin: str | None = None, prefix: Sequence[str] = ()
            ) -> subprocess.CompletedProcess[str]:
    """Run ``airgap ARGS`` with stdout and stderr piped, as into a log (``prefix``: under
    another program)."""
    return subprocess.run([*prefix, sys.executable, "-m", "airgap", *args], cwd=REPO,
                          env=_env(env), capture_output=True, text=True, timeout=timeout,
                          input=stdin)


def piped(*args: str, prefix: Sequence[str] = ()) -> subprocess.Popen[str]:
    """``airgap ARGS`` started with stdout and stderr piped, for a test that signals it
    (:func:`signal_when`) before it reads what it wrote."""
    return subprocess.Popen([*prefix, sys.executable, "-m", "airgap", *args], cwd=REPO,
                            env=_env(None), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def signal_when(process: subprocess.Popen[str], ready: Callable[[], bool], signum: int,
                timeout: float = 60) -> float:
    """Send ``signum`` once ``ready()``; return when it was sent."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the command ended before it could be signalled"
        assert time.monotonic() < deadline, "never ready to be signalled"
        time.sleep(0.05)
    process.send_signal(signum)
    return time.monotonic()


#: How airgap begins a line on stderr in a log: its UTC time.
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "


def unstamped(log: str) -> list[str]:
    """The lines of a log on stderr, each without the UTC time it begins with (a line
    without one fails the test: every line of airgap's log has it)."""
    lines = log.splitlines()
    assert all(re.match(STAMP, line) for line in lines), log
    return [re.sub(f"^{STAMP}", "", line) for line in lines]


__all__ = ["COLUMNS", "ROWS", "STAMP", "Seen", "at_terminal", "in_pipe", "piped", "signal",
           "signal_when", "unstamped"]
