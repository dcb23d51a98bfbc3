"""Crash points: kill the agent at a chosen step of the write path, for durability tests.

The point comes from `Settings.crash_point` (flag `--crash-point`, env `SHOAL_CRASH_POINT`);
the agent calls `arm()` once at start, the writer calls `maybe_crash()` at each point. Values:

- `after_put`: the segment file is in the object store, its commit has not started. The file is
  an orphan that garbage collection must remove; nothing was acked, producers retry.
- `after_commit`: the metadata commit succeeded, no producer has been answered. Idempotent
  producers retry and must get the original offsets back.

`POINT@N` crashes at the N-th time the point is reached (default 1), so a test can let some
segments through first. The process leaves with `os._exit(137)`: no `finally` blocks, no
flushing, no graceful shutdown, which is what a SIGKILL or an OOM kill does.
"""

from __future__ import annotations

import logging
import os
import sys

POINTS = frozenset({"after_put", "after_commit"})
EXIT_CODE = 137

log = logging.getLogger(__name__)

_armed: str | None = None
_remaining = 0


def parse(value: str) -> tuple[str, int]:
    """`after_put` or `after_put@3` -> (point, hits before the crash). Raises ValueError."""
    point, _, count = value.strip().partition("@")
    if point not in POINTS:
        raise ValueError(f"unknown crash point {point!r}; known: {', '.join(sorted(POINTS))}")
    hits = int(count) if count else 1
    if hits < 1:
        raise ValueError(f"crash point count must be >= 1: {value!r}")
    return point, hits


def arm(value: str | None) -> None:
    """Arm one crash point (None or "" disarms)."""
    global _armed, _remaining
    if not value:
        _armed, _remaining = None, 0
        return
    _armed, _remaining = parse(value)
    log.warning("crash point armed: the agent exits at %s (hit %d)", _armed, _remaining)


def armed() -> str | None:
    return _armed


def maybe_crash(point: str) -> None:
    """Exit the process at once if `point` is armed and its hit count is reached."""
    global _remaining
    if _armed != point:
        return
    _remaining -= 1
    if _remaining > 0:
        return
    # Logging handlers may buffer; write straight to stderr so the test log shows why.
    sys.stderr.write(f"shoal: crash point {point} reached, exiting with {EXIT_CODE}\n")
    sys.stderr.flush()
    os._exit(EXIT_CODE)
