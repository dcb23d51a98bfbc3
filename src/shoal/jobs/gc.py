"""Garbage collection of segment files (agents with the `jobs` role).

Two kinds of garbage, both deleted only once a grace period has passed:

1. **Unreferenced files**: recorded in the metadata store, but no index row points into them
   (every batch of the file was refused, or retention/deletion dropped its rows). The store
   lists them (`unreferenced_files`); the object is deleted, then the record (`forget_files`).
2. **Orphans**: objects under `segments/` the metadata store has never heard of, because the
   agent died (or its commit failed) between the PUT and the commit. Found by listing the
   bucket, in key order (keys sort by time), a bounded page per cycle.

An orphan is first *claimed*: `commit_file(file, [])` records it with no batches. That either
succeeds (the file was unknown; from now on no agent can commit it, since a second
`commit_file` for one file id raises `DuplicateFileError`) or raises `DuplicateFileError` (the
store knows it: committed, or claimed by another GC). A claimed orphan's object is deleted in
the same cycle, so it goes within grace + one interval of its upload. The claim record is
forgotten one grace later (step 1). A writer's commit that comes later than that is stopped by
its deadline instead: the store refuses a commit more than half a grace after the segment's
seal (`FileInfo.commit_by_ms`, docs/object-store.md), so it never indexes a deleted object.

Several agents may run this job at once: claims are atomic, deletes and forgets are idempotent.
Everything is bounded per cycle: files deleted (`files_per_cycle_max`) and keys listed
(`list_per_cycle_max`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import Counter

from shoal.jobs.periodic import PeriodicTask
from shoal.meta.store import DuplicateFileError, FileInfo
from shoal.write.segment_format import file_id_ms, segment_file_id

if TYPE_CHECKING:
    from shoal.meta.store import MetadataStore
    from shoal.objstore.store import ObjectMeta, ObjectStore

log = logging.getLogger(__name__)


@runtime_checkable
class KnowsFiles(Protocol):
    """Optional metadata-store method: which of these file ids are recorded. Lets the orphan
    scan skip committed files with one read per page instead of one failed claim each."""

    async def known_files(self, file_ids: list[str]) -> set[str]: ...

SEGMENTS_PREFIX = "segments/"
# Deletes of one cycle run this many at a time: fast enough, gentle on the store.
_DELETE_CONCURRENCY = 8
# The listing cursor only moves forward within one process; a full pass now and then finds
# orphans whose keys sort behind it (a writer whose clock lagged by more than the grace).
_FULL_PASS_INTERVAL_MS = 60 * 60 * 1000

GC_DELETED = Counter(
    "shoal_gc_deleted_files_total",
    "Segment files deleted by garbage collection",
    ["kind"],  # orphan (never committed) or unreferenced (no index row points into it)
)
GC_EXAMINED = Counter(
    "shoal_gc_examined_objects_total", "Objects under segments/ examined for orphans"
)
GC_CYCLES = Counter("shoal_gc_cycles_total", "Garbage-collection cycles run")
GC_ERRORS = Counter("shoal_gc_errors_total", "Garbage-collection steps that failed")


@dataclass(slots=True)
class CycleResult:
    unreferenced_deleted: int = 0
    orphans_deleted: int = 0
    examined: int = 0
    errors: int = 0


class GarbageCollector:
    def __init__(
        self,
        store: ObjectStore,
        meta: MetadataStore,
        *,
        interval_ms: int,
        grace_ms: int,
        files_per_cycle_max: int = 1000,
        list_per_cycle_max: int = 10_000,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        if interval_ms <= 0 or grace_ms < 0 or files_per_cycle_max <= 0 or list_per_cycle_max <= 0:
            raise ValueError("gc limits must be positive (grace may be 0)")
        self._store = store
        self._meta = meta
        self.interval_ms = interval_ms
        self.grace_ms = grace_ms
        self.files_per_cycle_max = files_per_cycle_max
        self.list_per_cycle_max = list_per_cycle_max
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._cursor: str | None = None
        self._pass_started_ms: int | None = None
        self._periodic = PeriodicTask("gc", interval_ms, self._cycle, self._cycle_failed)
        self.stats: dict[str, int] = {
            "cycles": 0,
            "orphans_deleted": 0,
            "unreferenced_deleted": 0,
            "examined": 0,
            "errors": 0,
        }

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _cycle(self) -> None:
        result = await self.run_once()
        if result.orphans_deleted or result.unreferenced_deleted:
            log.info(
                "gc: deleted %d orphan and %d unreferenced segment files",
                result.orphans_deleted,
                result.unreferenced_deleted,
            )

    def _cycle_failed(self) -> None:
        self.stats["errors"] += 1
        GC_ERRORS.inc()

    # -- one cycle ------------------------------------------------------------------------------
    async def run_once(self) -> CycleResult:
        """One bounded pass: unreferenced files first, then orphans with what budget is left."""
        now_ms = self._clock_ms()
        cutoff_ms = now_ms - self.grace_ms
        result = CycleResult()
        budget = self.files_per_cycle_max
        files = await self._meta.unreferenced_files(cutoff_ms, limit=budget)
        if files:
            deleted = await self._delete_objects(files, result)
            forgotten = await self._meta.forget_files(deleted) if deleted else []
            result.unreferenced_deleted = len(forgotten)
            budget -= len(files)
        if budget > 0:
            await self._collect_orphans(now_ms, cutoff_ms, budget, result)
        self.stats["cycles"] += 1
        self.stats["orphans_deleted"] += result.orphans_deleted
        self.stats["unreferenced_deleted"] += result.unreferenced_deleted
        self.stats["examined"] += result.examined
        self.stats["errors"] += result.errors
        GC_CYCLES.inc()
        GC_DELETED.labels(kind="orphan").inc(result.orphans_deleted)
        GC_DELETED.labels(kind="unreferenced").inc(result.unreferenced_deleted)
        GC_EXAMINED.inc(result.examined)
        if result.errors:
            GC_ERRORS.inc(result.errors)
        return result

    async def _collect_orphans(
        self, now_ms: int, cutoff_ms: int, budget: int, result: CycleResult
    ) -> None:
        if self._cursor is None or (
            self._pass_started_ms is not None
            and now_ms - self._pass_started_ms > _FULL_PASS_INTERVAL_MS
        ):
            self._cursor = None
            self._pass_started_ms = now_ms
        page = await self._store.list(
            SEGMENTS_PREFIX, limit=self.list_per_cycle_max, start_after=self._cursor
        )
        old: list[tuple[ObjectMeta, str | None]] = []
        for meta in page:
            if _younger_than(meta, cutoff_ms):
                # Keys sort by creation time: the rest of the page is younger still. The cursor
                # stays before this key so it is looked at again once it is old enough.
                break
            old.append((meta, segment_file_id(meta.key)))
        known = await self._known(old)
        claimed: list[FileInfo] = []
        for meta, file_id in old:
            result.examined += 1
            self._cursor = meta.key
            if file_id is None or file_id in known:
                continue  # not a segment file of ours (leave it alone), or committed
            try:
                await self._meta.commit_file(FileInfo(file_id, meta.key, meta.size), [])
            except DuplicateFileError:
                continue  # known to the store: committed, or claimed by another collector
            claimed.append(FileInfo(file_id, meta.key, meta.size))
            if len(claimed) >= budget:
                break
        await self._finish_orphans(claimed, result)

    async def _known(self, old: list[tuple[ObjectMeta, str | None]]) -> set[str]:
        """File ids the store already knows, in one read, when it can tell (`known_files`);
        otherwise empty, and each claim attempt finds out by itself (one write each)."""
        if not isinstance(self._meta, KnowsFiles):
            return set()
        ids = [file_id for _, file_id in old if file_id is not None]
        return await self._meta.known_files(ids) if ids else set()

    async def _finish_orphans(self, claimed: list[FileInfo], result: CycleResult) -> None:
        if not claimed:
            return
        deleted = await self._delete_objects(claimed, result)
        result.orphans_deleted += len(deleted)
        for file_id in deleted:
            log.info("gc: deleted orphan segment file %s", file_id)
        # The claim records stay: they fence out a commit of these files that might still be
        # on its way. They are unreferenced files now, forgotten by step 1 one grace later
        # (deleting their already deleted objects again is harmless).

    async def _delete_objects(self, files: list[FileInfo], result: CycleResult) -> list[str]:
        """Delete the objects; returns the file ids whose object is gone."""
        gone: list[str] = []
        for start in range(0, len(files), _DELETE_CONCURRENCY):
            chunk = files[start : start + _DELETE_CONCURRENCY]
            outcomes = await asyncio.gather(
                *(self._store.delete(f.key) for f in chunk), return_exceptions=True
            )
            for file, outcome in zip(chunk, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    if isinstance(outcome, asyncio.CancelledError):
                        raise outcome
                    log.warning("gc: delete of %s failed: %s", file.key, outcome)
                    result.errors += 1
                else:
                    gone.append(file.file_id)
        return gone


def _younger_than(meta: ObjectMeta, cutoff_ms: int) -> bool:
    """Old only when both the id's clock (the writer's) and the store's clock agree."""
    uploaded_ms = int(meta.last_modified.astimezone(UTC).timestamp() * 1000)
    file_id = segment_file_id(meta.key)
    created_ms = file_id_ms(file_id) if file_id is not None else uploaded_ms
    return max(uploaded_ms, created_ms) >= cutoff_ms

