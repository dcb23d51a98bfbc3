"""File compaction (agents with the `jobs` role): many small segment files become few large ones.

A producer's flush writes one file per agent per interval (2 ms locally, 100 ms on S3), so a
topic is soon thousands of small files, and a catch-up read pays one GET per file per zone
where the read path's economics want one per 4 MiB block. Every `interval_ms` this job:

1. lists the candidates: files index rows point into, smaller than half the target and older
   than one interval (a tailing consumer has read them by then), oldest first;
2. plans merges by level (`merge.plan_merges`);
3. for each merge, reads the rows of its files (one metadata read), GETs each file whole (one
   GET per file), copies the live batches into one new file (`merge.merge_rows`), PUTs it (one
   PUT), and swaps the rows over in one metadata transaction (`swap_files`) that moves only the
   rows still where they were read: retention, DeleteRecords, topic deletion and another
   compactor may run meanwhile and win.

Readers holding old rows (the index cache) keep reading the old files: a file that lost its
last row is deleted by the GC only one grace after that (DESIGN.md invariant 3). A merged file
that is PUT but never swapped in (crash, store outage) is an orphan the GC deletes; its swap is
refused after the same deadline as a writer's commit (`FileInfo.commit_by_ms`), so it is never
indexed once the GC may have deleted it.

Each cycle first runs the log cleaner of compacted topics (`log_cleaner.py`), then merges.
A cycle merges until nothing is due (listing again while listings come back full), at most
1024 merges: the soak of 3 agents flushing every 5 ms (230 files/s) outran a bound of 8.
Running it on two agents at once is safe (the swap's check) but wasteful, so it runs only on
the live jobs agent with the smallest node id (`should_run`). Memory: one merge at a time, its
inputs (at most `target_bytes`) and its output held at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import Counter

from shoal.jobs.log_cleaner import LogCleaner
from shoal.jobs.merge import FAN_IN_DEFAULT, merge_rows, plan_merges
from shoal.jobs.periodic import PeriodicTask
from shoal.meta.store import CompactionFile, DuplicateFileError, FileInfo
from shoal.write.segment_format import file_id_ms, new_file_id, segment_key

if TYPE_CHECKING:
    from shoal.meta.store import MetadataStore
    from shoal.objstore.store import ObjectStore

log = logging.getLogger(__name__)

# Old files read at once by one merge: gentle on the store, and a merge's memory is bounded by
# its target whatever the concurrency.
_GET_CONCURRENCY = 8

COMPACTION_FILES = Counter(
    "shoal_compaction_files_total",
    "Segment files read (input) and written (output) by file compaction",
    ["kind"],
)
COMPACTION_BYTES = Counter(
    "shoal_compaction_bytes_total",
    "Bytes of segment files read (input) and written (output) by file compaction",
    ["kind"],
)
COMPACTION_ROWS = Counter(
    "shoal_compaction_rows_total",
    "Index rows a compaction swap moved, or left because they moved or went meanwhile",
    ["outcome"],  # moved, stale (retention or another compactor won), skipped (failed a check)
)
COMPACTION_CYCLES = Counter("shoal_compaction_cycles_total", "File-compaction cycles run")
COMPACTION_ERRORS = Counter(
    "shoal_compaction_errors_total", "File-compaction cycles and merges that failed"
)


@dataclass(slots=True)
class CycleResult:
    merges: int = 0
    files_in: int = 0
    files_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rows_moved: int = 0


class FileCompactor:
    def __init__(
        self,
        store: ObjectStore,
        meta: MetadataStore,
        *,
        interval_ms: int,
        target_bytes: int,
        commit_within_ms: int,
        fan_in: int = FAN_IN_DEFAULT,
        merges_per_cycle_max: int = 1024,
        candidates_max: int = 4096,
        should_run: Callable[[], bool] = lambda: True,
        cleaner: LogCleaner | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        if interval_ms <= 0 or target_bytes <= 0 or merges_per_cycle_max <= 0:
            raise ValueError("compaction interval, target and merges per cycle must be positive")
        self._store = store
        self._meta = meta
        self.interval_ms = interval_ms
        self.target_bytes = target_bytes
        self.fan_in = fan_in
        # A level that had no new file for this long is merged even if its run is short.
        self.idle_ms = 3 * interval_ms
        self._commit_within_ms = commit_within_ms
        self.merges_per_cycle_max = merges_per_cycle_max
        self.candidates_max = candidates_max
        self._should_run = should_run
        self._cleaner = cleaner
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._periodic = PeriodicTask("compaction", interval_ms, self._cycle, self._cycle_failed)
        self.stats: dict[str, int] = {
            "cycles": 0, "merges": 0, "files_in": 0, "files_out": 0, "bytes_in": 0,
            "bytes_out": 0, "rows_moved": 0, "errors": 0,
        }

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _cycle(self) -> None:
        if not self._should_run():
            return
        if self._cleaner is not None:
            # Compacted topics first: what the cleaner rewrites are small files this job merges
            # in a later cycle, and the two never swap rows at the same time.
            cleaned = await self._cleaner.run_once()
            if cleaned.rewritten or cleaned.dropped:
                log.info(
                    "log cleaner: %d partitions, %d batches rewritten, %d dropped",
                    cleaned.partitions, cleaned.rewritten, cleaned.dropped,
                )
        result = await self.run_once()
        if result.merges:
            log.info(
                "compaction: merged %d files (%d bytes) into %d (%d bytes)",
                result.files_in, result.bytes_in, result.files_out, result.bytes_out,
            )

    def _cycle_failed(self) -> None:
        self.stats["errors"] += 1
        COMPACTION_ERRORS.inc()

    async def run_once(self) -> CycleResult:
        """Merge what is due, listing again while listings come back full: a cycle keeps up
        with any flush rate up to `merges_per_cycle_max` merges (32 files each)."""
        now_ms = self._clock_ms()
        result = CycleResult()
        while result.merges < self.merges_per_cycle_max:
            candidates = await self._meta.compaction_candidates(
                self.target_bytes // 2, now_ms - self.interval_ms, limit=self.candidates_max
            )
            plans = plan_merges(
                candidates,
                target_bytes=self.target_bytes,
                fan_in=self.fan_in,
                idle_ms=self.idle_ms,
                now_ms=now_ms,
            )
            done = result.merges
            for plan in plans[: self.merges_per_cycle_max - result.merges]:
                await self._merge(plan, result)
            # A listing that was not full held every candidate; merged files are young (not
            # candidates until the next cycle) and merged-away ones released.
            if len(candidates) < self.candidates_max or result.merges == done:
                break
        self.stats["cycles"] += 1
        for name in ("merges", "files_in", "files_out", "bytes_in", "bytes_out", "rows_moved"):
            self.stats[name] += getattr(result, name)
        COMPACTION_CYCLES.inc()
        return result

    async def _merge(self, files: list[CompactionFile], result: CycleResult) -> None:
        rows = await self._meta.file_rows([f.file_id for f in files])
        if not rows:
            return  # retention or another compactor emptied them since the listing
        objects = await self._get_all(files)
        merged = merge_rows(objects, rows)
        if merged.skipped:
            first = merged.skipped[0]
            log.warning(
                "compaction: %d rows left in place (unreadable, or failed their checks), the"
                " first %s-%d at %d in file %s",
                len(merged.skipped), first.topic, first.partition, first.base_offset,
                first.file_id,
            )
        COMPACTION_ROWS.labels(outcome="skipped").inc(len(merged.skipped))
        if not merged.moves:
            return
        file_id = new_file_id()
        key = segment_key(file_id)
        await self._store.put_create(key, merged.data)
        deadline_ms = file_id_ms(file_id) + self._commit_within_ms
        file = FileInfo(file_id, key, len(merged.data), commit_by_ms=deadline_ms)
        level = max(f.level for f in files) + 1
        try:
            swap = await self._meta.swap_files(file, level, merged.moves, [])
        except DuplicateFileError:
            # The GC took it for an orphan (we were stalled past a grace): it deletes it.
            log.warning("compaction: merged file %s was claimed by the GC", file_id)
            return
        bytes_in = sum(len(data) for data in objects.values())
        result.merges += 1
        result.files_in += len(files)
        result.files_out += 1
        result.bytes_in += bytes_in
        result.bytes_out += len(merged.data)
        result.rows_moved += swap.moved
        COMPACTION_FILES.labels(kind="input").inc(len(files))
        COMPACTION_FILES.labels(kind="output").inc()
        COMPACTION_BYTES.labels(kind="input").inc(bytes_in)
        COMPACTION_BYTES.labels(kind="output").inc(len(merged.data))
        COMPACTION_ROWS.labels(outcome="moved").inc(swap.moved)
        COMPACTION_ROWS.labels(outcome="stale").inc(len(merged.moves) - swap.moved)

    async def _get_all(self, files: list[CompactionFile]) -> dict[str, bytes]:
        """Every file whole, `_GET_CONCURRENCY` at a time. A file that cannot be read is left
        out: its rows stay where they are (`merge_rows` skips them)."""
        out: dict[str, bytes] = {}
        for start in range(0, len(files), _GET_CONCURRENCY):
            chunk = files[start : start + _GET_CONCURRENCY]
            got = await asyncio.gather(
                *(self._store.get(f.key) for f in chunk), return_exceptions=True
            )
            for f, data in zip(chunk, got, strict=True):
                if isinstance(data, asyncio.CancelledError):
                    raise data
                if isinstance(data, BaseException):
                    log.warning("compaction: cannot read %s: %s", f.key, data)
                    COMPACTION_ERRORS.inc()
                    continue
                out[f.file_id] = data
        return out
