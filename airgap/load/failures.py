"""The failed connections of ``airgap serve``: each costs one count, never a traceback.

The counts are reported as one warning at the first failure, then at most once per
``report_interval``, and a last time when the server stops. What aiohttp and asyncio would
log with a traceback for a connection (a reset, a failed handshake) is turned into a
count by a handler on their loggers for as long as the server runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from airgap.reporter import Reporter

#: The loggers that would print a traceback per failed connection.
_NOISY_LOGGERS = ("aiohttp.server", "aiohttp.web", "asyncio")


def connection_gone(error: BaseException | None) -> ConnectionError | None:
    """The ConnectionError behind ``error``: itself, or one in its context chain. Over
    TLS, Python 3.11's ``sendfile`` fallback turns a connection closed under it into an
    AttributeError as it restores its protocol, the ConnectionError as its context."""
    for _ in range(8):  # a chain of our own making is short; never follow a loop
        if error is None or isinstance(error, ConnectionError):
            return error
        error = error.__context__
    return None


@dataclass
class FailureCount:
    """Failed connections by reason, reported through ``reporter`` together."""

    reporter: Reporter
    report_interval: float
    reasons: Counter[str] = field(default_factory=Counter)
    cut_off: int = 0  # connections cut off (counted) whose broken pipe is still to be logged
    _reported: float = 0.0
    _saved_loggers: list[tuple[logging.Logger, bool, list[logging.Handler]]] = \
        field(default_factory=list)

    def fail(self, reason: str) -> None:
        """Count one failed connection; the first ever is reported at once."""
        first = not self.reasons and not self._reported
        self.reasons[reason] += 1
        if first:
            self.report(first=True)

    def report_when_due(self, now: float) -> None:
        """Report the counts if there are any and ``report_interval`` has passed."""
        if self.reasons and now - self._reported >= self.report_interval:
            self.report()

    def report(self, *, first: bool = False, final: bool = False) -> None:
        """One warning with the counts since the last, which are then cleared."""
        self._reported = time.monotonic()
        if not self.reasons:
            return
        total = sum(self.reasons.values())
        reasons = "; ".join(f"{count} {reason}" for reason, count in self.reasons.most_common())
        when = "" if final else (f"; further failures are counted and reported every "
                                 f"{self.report_interval:g} s" if first else "")
        self.reporter.warning(f"{total} connection(s) failed: {reasons}{when}")
        self.reasons.clear()

    def expected(self, error: BaseException | None) -> bool:
        """Whether ``error`` is the broken pipe of a connection cut off (already counted as
        timed out)."""
        if self.cut_off and connection_gone(error) is not None:
            self.cut_off -= 1
            return True
        return False

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The event loop's exception handler while the server runs: a count."""
        exception = context.get("exception")
        self.fail(str(context.get("message") or type(exception).__name__).split("\n")[0])

    def quiet_loggers(self) -> None:
        """Count what aiohttp's and asyncio's loggers would print, until restored."""
        counter = _CountingHandler(self)
        for name in _NOISY_LOGGERS:
            logger = logging.getLogger(name)
            self._saved_loggers.append((logger, logger.propagate, list(logger.handlers)))
            logger.handlers = [counter]
            logger.propagate = False

    def restore_loggers(self) -> None:
        """Give those loggers back their handlers."""
        for logger, propagate, handlers in self._saved_loggers:
            logger.handlers = handlers
            logger.propagate = propagate
        self._saved_loggers.clear()


class _CountingHandler(logging.Handler):
    """Turns what aiohttp and asyncio would log (with a traceback) into a count."""

    def __init__(self, failures: FailureCount) -> None:
        super().__init__(logging.WARNING)
        self._failures = failures

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if self._failures.expected(error):
            return
        gone = connection_gone(error)
        if gone is not None:  # the client hung up (a reset, a broken pipe) mid-answer
            self._failures.fail(f"closed by the client ({type(gone).__name__})")
            return
        reason = type(error).__name__ if error is not None else record.getMessage()
        self._failures.fail(f"{reason.splitlines()[0][:120] if reason else 'error'}")
