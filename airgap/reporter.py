"""The small interface core code uses to report progress.

Core modules never print. They call a :class:`Reporter`; the CLI passes one backed by
rich on a terminal, and :class:`NullReporter` when quiet or not a terminal. Every method
may be called from several worker threads at once.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Receives progress from long-running work."""

    def task_started(self, key: str, description: str, total: int | None) -> None:
        """An item (a blob, a file) started; ``total`` is its size in bytes when known."""

    def task_advanced(self, key: str, nbytes: int) -> None:
        """``nbytes`` more bytes of item ``key`` arrived."""

    def task_restarted(self, key: str, completed: int) -> None:
        """Item ``key`` starts over (a retry): ``completed`` bytes are already kept."""

    def task_finished(self, key: str, outcome: str) -> None:
        """Item ``key`` ended; ``outcome`` is a short word such as ``done`` or ``kept``."""

    def info(self, message: str) -> None:
        """A line worth showing to the operator."""

    def warning(self, message: str) -> None:
        """Something the operator should know about but that does not stop the work."""


class NullReporter:
    """A reporter that ignores everything: for ``--quiet``, pipes and tests."""

    def task_started(self, key: str, description: str, total: int | None) -> None:
        pass

    def task_advanced(self, key: str, nbytes: int) -> None:
        pass

    def task_restarted(self, key: str, completed: int) -> None:
        pass

    def task_finished(self, key: str, outcome: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

