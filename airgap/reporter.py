"""The small interface core code reports progress through.

Core modules never print. They tell a :class:`Reporter` what happens: a phase of the
work begins (the image, the artifacts, the signature checks) with its size when known;
an item of a phase starts, grows, is kept from an earlier run, or ends; a line worth
showing; a warning. The command line backs it with a live display on a terminal and
with timestamped lines in a log; :class:`NullReporter` ignores it all. Every method may
be called from several worker threads at once.

Bytes are told apart by where they came from: ``resumed`` bytes were already in a
partial download, ``kept`` items were already in the bundle and still verify, and only
what :meth:`~Reporter.task_advanced` reports came over the network (or the disk) now.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Receives progress from long-running work."""

    def phase_started(self, phase: str, description: str, *, total: int | None = None,
                      items: int | None = None) -> None:
        """A phase begins: ``total`` bytes over ``items`` items, when known."""

    def phase_sized(self, phase: str, total: int, items: int) -> None:
        """A phase that began without its size learnt it: ``total`` bytes over ``items``
        items in all (Elastic Defend's, once its manifests are read)."""

    def phase_finished(self, phase: str, summary: str = "") -> None:
        """A phase ended; ``summary`` says how, in a few words."""

    def task_started(self, key: str, description: str, total: int | None, *,
                     phase: str = "", resumed: int = 0) -> None:
        """Item ``key`` of ``phase`` starts: ``total`` bytes when known, of which
        ``resumed`` are already there."""

    def task_sized(self, key: str, total: int) -> None:
        """Item ``key`` turned out to have ``total`` bytes (a server said so)."""

    def task_advanced(self, key: str, nbytes: int) -> None:
        """``nbytes`` more bytes of item ``key`` arrived (or went out)."""

    def task_restarted(self, key: str, completed: int) -> None:
        """Item ``key`` starts over (a retry): ``completed`` bytes of it are kept."""

    def task_waiting(self, key: str, what: str) -> None:
        """Item ``key`` has moved all its bytes and waits for ``what`` (an engine
        storing layers, say)."""

    def task_finished(self, key: str, outcome: str, detail: str = "") -> None:
        """Item ``key`` ended: ``outcome`` is a short word (``fetched``, ``verified``,
        ``rejected``, ``failed`` ...), ``detail`` what was proved or went wrong."""

    def task_kept(self, key: str, description: str, size: int, *, phase: str = "",
                  detail: str = "") -> None:
        """Item ``key`` was already in place and still good: nothing was moved."""

    def info(self, message: str) -> None:
        """A line worth showing to the operator."""

    def warning(self, message: str) -> None:
        """Something the operator should know about but that does not stop the work."""


class NullReporter:
    """A reporter that ignores everything."""

    def phase_started(self, phase: str, description: str, *, total: int | None = None,
                      items: int | None = None) -> None:
        pass

    def phase_sized(self, phase: str, total: int, items: int) -> None:
        pass

    def phase_finished(self, phase: str, summary: str = "") -> None:
        pass

    def task_started(self, key: str, description: str, total: int | None, *,
                     phase: str = "", resumed: int = 0) -> None:
        pass

    def task_sized(self, key: str, total: int) -> None:
        pass

    def task_advanced(self, key: str, nbytes: int) -> None:
        pass

    def task_restarted(self, key: str, completed: int) -> None:
        pass

    def task_waiting(self, key: str, what: str) -> None:
        pass

    def task_finished(self, key: str, outcome: str, detail: str = "") -> None:
        pass

    def task_kept(self, key: str, description: str, size: int, *, phase: str = "",
                  detail: str = "") -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass
