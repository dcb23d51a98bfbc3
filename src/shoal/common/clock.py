"""Clocks: the one shape in which time is read and injected.

A `Clock` is a zero-argument callable returning an int (milliseconds). Code that needs the time
takes a `Clock` (defaulting to `wall_ms` or `monotonic_ms`), so tests can pass a fake one.

- `wall_ms`: epoch milliseconds. For times that are stored or compared across processes and
  hosts (heartbeats, file and commit timestamps); hosts' clocks must agree (NTP).
- `monotonic_ms` / `monotonic_s`: never go back, meaningless across processes. For deadlines,
  timeouts and cache ages inside one process.

This module imports nothing from shoal: any layer may use it.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> int:
        """The current time in milliseconds (epoch or monotonic, as the clock documents)."""
        ...


def wall_ms() -> int:
    """Epoch milliseconds from the host's wall clock."""
    return time.time_ns() // 1_000_000


def monotonic_ms() -> int:
    """Milliseconds from the monotonic clock (only differences mean anything)."""
    return time.monotonic_ns() // 1_000_000


def monotonic_s() -> float:
    """Seconds from the monotonic clock, as a float (only differences mean anything)."""
    return time.monotonic()
