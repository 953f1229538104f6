"""Work beside the main thread: waited for, or stopped and abandoned when the main work fails."""

from __future__ import annotations

import threading
import time

import pytest

from airgap.threads import SidePool, map_in_threads


def test_side_work_is_waited_for_and_its_result_kept() -> None:
    with SidePool("airgap-test") as side:
        done = side.submit(lambda: time.sleep(0.2) or 42)
    assert done.result(timeout=0) == 42


def test_a_failure_in_the_block_stops_the_side_work_promptly() -> None:
    stop = threading.Event()
    ended = threading.Event()

    def patient() -> None:
        stop.wait(30)
        ended.set()

    started = time.monotonic()
    with pytest.raises(ValueError, match="refused"), SidePool("airgap-test",
                                                              on_failure=stop.set) as side:
        side.submit(patient)
        raise ValueError("the bundle was refused")
    assert stop.is_set() and ended.wait(5)
    assert time.monotonic() - started < 5


def test_a_failure_of_the_side_work_is_left_in_its_future() -> None:
    with SidePool("airgap-test") as side:
        failed = side.submit(lambda: 1 / 0)
    assert isinstance(failed.exception(timeout=0), ZeroDivisionError)


def test_map_keeps_the_order_and_stops_at_the_first_failure() -> None:
    assert map_in_threads(lambda x: x * 2, range(20), jobs=4) == [x * 2 for x in range(20)]
    stop = threading.Event()
    with pytest.raises(KeyError):
        map_in_threads(lambda x: {}[x] if x == 3 else x, range(10), jobs=2, stop=stop)
    assert stop.is_set()
