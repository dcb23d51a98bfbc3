"""Background jobs run by agents with the `jobs` role (garbage collection; compaction and
retention later)."""

from __future__ import annotations

from shoal.jobs.gc import CycleResult, GarbageCollector

__all__ = ["CycleResult", "GarbageCollector"]
