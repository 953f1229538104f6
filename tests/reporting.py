"""A reporter for tests: it keeps what core code reports."""

from __future__ import annotations

import threading

from airgap.reporter import NullReporter


class RecordingReporter(NullReporter):
    """Keeps the messages, the outcome of every item and the bytes reported."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.outcomes: dict[str, str] = {}
        self.details: dict[str, str] = {}
        self.phases: dict[str, tuple[int | None, int | None]] = {}
        self.advanced: dict[str, int] = {}
        self.resumed: dict[str, int] = {}
        self._lock = threading.Lock()

    def phase_started(self, phase: str, description: str, *, total: int | None = None,
                      items: int | None = None) -> None:
        self.phases[phase] = (total, items)

    def task_started(self, key: str, description: str, total: int | None, *,
                     phase: str = "", resumed: int = 0) -> None:
        with self._lock:
            self.resumed[key] = resumed

    def task_advanced(self, key: str, nbytes: int) -> None:
        with self._lock:
            self.advanced[key] = self.advanced.get(key, 0) + nbytes

    def task_finished(self, key: str, outcome: str, detail: str = "") -> None:
        self.outcomes[key] = outcome
        self.details[key] = detail

    def task_kept(self, key: str, description: str, size: int, *, phase: str = "",
                  detail: str = "") -> None:
        self.outcomes[key] = "kept"

    def info(self, message: str) -> None:
        self.messages.append(("info", message))

    def warning(self, message: str) -> None:
        self.messages.append(("warning", message))
