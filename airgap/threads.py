"""Work on threads that Ctrl-C still stops promptly.

The kernel may hand SIGINT to any thread; Python acts on it only when the main thread
runs bytecode. A main thread blocked in ``future.result()`` would not notice until all
the work is done, so it waits in short slices instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")
_WAKE_UP = 0.25


def wait_all(futures: Iterable[Future[Any]]) -> None:
    """Return once every future is done; a Ctrl-C meanwhile raises at once."""
    pending = set(futures)
    while pending:
        _, pending = wait(pending, timeout=_WAKE_UP)


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
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=_WAKE_UP, return_when=FIRST_EXCEPTION)
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            for future in done:
                future.result()
    except BaseException:
        if stop is not None:
            stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [future.result() for future in futures]
