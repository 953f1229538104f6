"""The failed connections of serve: counted, reported together, the ConnectionError found
behind what Python's TLS code raises instead."""

from __future__ import annotations

from airgap.load.failures import FailureCount, connection_gone
from tests.reporting import RecordingReporter


def test_the_connection_error_behind_another_is_found() -> None:
    reset = ConnectionResetError("reset by peer")
    restoring = "'NoneType' object has no attribute '_set_app_protocol'"
    try:
        try:
            raise reset
        except ConnectionError:
            # as asyncio's sendfile fallback does: raised while the reset is handled
            raise AttributeError(restoring)  # noqa: B904
    except AttributeError as exc:
        restored = exc
    assert connection_gone(restored) is reset
    assert connection_gone(reset) is reset
    assert connection_gone(ValueError("other")) is None and connection_gone(None) is None
    looped = ValueError("a")
    looped.__context__ = ValueError("b")
    looped.__context__.__context__ = looped  # never followed for ever
    assert connection_gone(looped) is None


def test_failures_are_reported_at_the_first_then_together() -> None:
    reporter = RecordingReporter()
    failures = FailureCount(reporter, report_interval=60)
    failures.fail("TLS handshake failed")
    failures.fail("TLS handshake failed")
    failures.fail("refused: 4 connections open (the cap), every one busy")
    failures.report_when_due(0.0)  # not yet due: nothing more said
    failures.report(final=True)
    assert [m for kind, m in reporter.messages if kind == "warning"] == [
        "1 connection(s) failed: 1 TLS handshake failed; further failures are counted and "
        "reported every 60 s",
        "2 connection(s) failed: 1 TLS handshake failed; 1 refused: 4 connections open (the "
        "cap), every one busy"]
    failures.cut_off = 1
    assert failures.expected(BrokenPipeError()) and not failures.expected(BrokenPipeError())
