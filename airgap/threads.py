"""Work on threads that Ctrl-C still stops promptly.

The kernel may hand SIGINT to any thread; Python acts on it only when the main thread
runs bytecode. A main thread blocked in ``future.result()`` would not notice until all
the work is done, so it waits in short slices instead.

After a failure or a Ctrl-C, work in progress gets :data:`GRACE` seconds to notice its
stop and end; what still runs then (a read from a stalled server lasts until its
timeout, and nothing interrupts it) is left behind, and the command line ends the
process without it (:func:`airgap.cli.main.run`). Such work only ever writes ``.part`` files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from airgap.errors import AirgapError, raise_collected

_T = TypeVar("_T")
_R = TypeVar("_R")
_WAKE_UP = 0.25
GRACE = 2.0


class _Completion:
    """Notes futures finishing through their callbacks, so that waiting for them takes
    one lock. (``concurrent.futures.wait`` takes every future's lock in turn, and a
    Ctrl-C arriving in between can leave some held, which deadlocks the workers.)"""

    def __init__(self, futures: list[Future[Any]], *, stop_on_failure: bool) -> None:
        self.done = threading.Event()
        self.failed: Future[Any] | None = None
        self._left = len(futures)
        self._stop_on_failure = stop_on_failure
        self._lock = threading.Lock()
        if not futures:
            self.done.set()
        for future in futures:
            future.add_done_callback(self._finished)

    def _finished(self, future: Future[Any]) -> None:
        with self._lock:
            self._left -= 1
            if not future.cancelled() and future.exception() is not None \
                    and self.failed is None:
                self.failed = future
            if self._left == 0 or (self._stop_on_failure and self.failed is not None):
                self.done.set()


def wait_all(futures: Iterable[Future[Any]], timeout: float | None = None) -> bool:
    """Wait until every future is done (True) or ``timeout`` seconds pass (False); a
    Ctrl-C meanwhile raises at once."""
    completion = _Completion(list(futures), stop_on_failure=False)
    deadline = None if timeout is None else time.monotonic() + timeout
    while not completion.done.wait(_WAKE_UP):
        if deadline is not None and time.monotonic() >= deadline:
            return False
    return True


def abandon(pool: ThreadPoolExecutor, futures: Iterable[Future[Any]]) -> None:
    """Drop ``pool``'s work not yet started, and wait at most :data:`GRACE` seconds for
    ``futures`` in progress to end (their stop must already be set)."""
    pool.shutdown(wait=False, cancel_futures=True)
    wait_all(futures, GRACE)


def map_in_threads(work: Callable[[_T], _R], items: Iterable[_T], jobs: int,
                   stop: threading.Event | None = None) -> list[_R]:
    """``work`` applied to every item on ``jobs`` threads, results in item order.

    The first exception ``work`` raises, a Ctrl-C, or ``stop`` being set from elsewhere
    ends it all: the items not started are dropped, ``stop`` is set so that work in
    progress can give up at its next check, and the exception (``KeyboardInterrupt`` for
    ``stop``) is raised. Work that must not stop the others catches its own errors.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="airgap")
    futures = [pool.submit(work, item) for item in items]
    try:
        completion = _Completion(futures, stop_on_failure=True)
        while not completion.done.wait(_WAKE_UP):
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
        if completion.failed is not None:
            completion.failed.result()
    except BaseException:
        if stop is not None:
            stop.set()
        abandon(pool, futures)
        raise
    pool.shutdown(wait=True)
    return [future.result() for future in futures]


class SidePool:
    """Work that runs on threads beside the main thread, for the length of a ``with``
    block: ``with SidePool("airgap-x", on_failure=stop.set) as side: side.submit(...)``.

    When the block ends, the side work is waited for (Ctrl-C still acts at once). When
    the block raises, or a Ctrl-C comes while waiting, ``on_failure`` tells the side work
    to stop, and it is abandoned (:func:`abandon`). Failures of the side work itself are
    left in its futures, for the caller to read.
    """

    def __init__(self, name: str, *, workers: int = 1,
                 on_failure: Callable[[], None] | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._futures: list[Future[Any]] = []
        self._on_failure = on_failure

    def submit(self, work: Callable[..., _R], *args: Any) -> Future[_R]:
        """Start ``work(*args)`` beside the main thread."""
        future = self._pool.submit(work, *args)
        self._futures.append(future)
        return future

    def __enter__(self) -> SidePool:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: object) -> None:
        try:
            if kind is None:
                wait_all(self._futures)
        except BaseException:
            self._stop()
            raise
        if kind is not None:
            self._stop()
            return
        self._pool.shutdown()

    def _stop(self) -> None:
        if self._on_failure is not None:
            self._on_failure()
        abandon(self._pool, self._futures)


def raise_failures(futures: Iterable[Future[Any]], message: str) -> None:
    """Raise what finished ``futures`` failed with, if anything: an exception that is not
    an :class:`~airgap.errors.AirgapError` first (a full disk, say: it stopped the others,
    which then ended interrupted, so it is the cause), else their errors together under
    ``message``."""
    failures = [e for e in (f.exception() for f in futures) if e is not None]
    for failure in sorted(failures, key=lambda e: isinstance(e, KeyboardInterrupt)):
        if not isinstance(failure, AirgapError):
            raise failure
    raise_collected([e for e in failures if isinstance(e, AirgapError)], message)
