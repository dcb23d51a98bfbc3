"""`shoal.common.clock`: the clocks every layer reads time from."""

from __future__ import annotations

import time

from shoal.common.clock import Clock, monotonic_ms, monotonic_s, wall_ms


def test_wall_ms_is_epoch_milliseconds() -> None:
    before = int(time.time() * 1000)
    now = wall_ms()
    assert before - 1 <= now <= int(time.time() * 1000) + 1


def test_monotonic_clocks_never_go_back() -> None:
    a_ms, a_s = monotonic_ms(), monotonic_s()
    b_ms, b_s = monotonic_ms(), monotonic_s()
    assert b_ms >= a_ms and b_s >= a_s
    assert abs(a_s * 1000 - a_ms) < 1000


def test_functions_and_fakes_are_clocks() -> None:
    fake_now = [5]
    clocks: list[Clock] = [wall_ms, monotonic_ms, lambda: fake_now[0]]
    assert all(isinstance(c(), int) for c in clocks)
