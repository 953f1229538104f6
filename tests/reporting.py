"""A reporter for tests: it keeps what core code reports."""

from __future__ import annotations

from airgap.reporter import NullReporter


class RecordingReporter(NullReporter):
    """Keeps the messages and outcomes it is given: for callers that want a log."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.outcomes: dict[str, str] = {}

    def task_finished(self, key: str, outcome: str) -> None:
        self.outcomes[key] = outcome

    def info(self, message: str) -> None:
        self.messages.append(("info", message))

    def warning(self, message: str) -> None:
        self.messages.append(("warning", message))
