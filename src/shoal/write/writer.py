"""The write pipeline: open segment -> seal -> concurrent uploads -> commits in seal order,
several uploaded segments per metadata transaction (group commit).

Produce handlers call `append` with every validated batch of one request. The batches land in
the same segment file, so one metadata transaction commits the whole request. `append` returns
once the file is in the object store and its batches are committed (acked means durable).

Error codes handed back (all retriable in Kafka clients):
- 56 KAFKA_STORAGE_ERROR: the upload failed. Nothing was committed ("not persisted" for
  librdkafka, so it retries without marking messages possibly-persisted).
- 7 REQUEST_TIMED_OUT: the metadata commit failed or timed out. Its outcome is unknown (a commit
  can succeed after the connection dropped), which is what Kafka's "possibly persisted" timeout
  means; idempotent producers resolve it through sequence deduplication.
- 7 REQUEST_TIMED_OUT also when `append` waited `backpressure_timeout_ms` for buffer space.
- 6 NOT_LEADER_OR_FOLLOWER after `close()`: the client refreshes metadata and goes elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shoal import metrics
from shoal.meta.store import BatchOutcome
from shoal.protocol.errors import KAFKA_STORAGE_ERROR, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT
from shoal.write import crash_points
from shoal.write.segment_buffer import OpenSegment, SealedSegment
from shoal.write.segment_format import BatchEntry

if TYPE_CHECKING:
    from shoal.meta.store import MetadataStore
    from shoal.objstore.store import ObjectStore
    from shoal.protocol.batch import BatchHeader

log = logging.getLogger(__name__)

# Segments one metadata transaction may commit together (bounds its size and lock set).
COMMIT_GROUP_SEGMENTS_MAX = 32

OnCommit = Callable[[list[tuple[str, int, int]]], None]


@dataclass(frozen=True, slots=True)
class AppendItem:
    topic: str
    partition: int
    data: bytes | memoryview  # the whole RecordBatch as the client sent it (validated)
    header: BatchHeader
    # The id of the topic it was validated against; the commit refuses the batch if the topic
    # was deleted (and perhaps re-created) since.
    topic_id: uuid.UUID | None = None


class SegmentWriter:
    def __init__(
        self,
        store: ObjectStore,
        meta: MetadataStore,
        *,
        flush_interval_ms: int,
        flush_bytes_max: int,
        uploads_in_flight_max: int,
        buffer_bytes_max: int,
        on_commit: OnCommit,
        on_uploaded: Callable[[str, bytes], None] | None = None,
        backpressure_timeout_ms: int = 30_000,
        commit_timeout_ms: int = 30_000,
        commit_within_ms: int | None = None,
    ) -> None:
        if flush_bytes_max <= 0 or buffer_bytes_max <= 0 or uploads_in_flight_max <= 0:
            raise ValueError("writer limits must be positive")
        self._store = store
        self._meta = meta
        self._flush_interval_s = max(0, flush_interval_ms) / 1000
        self._flush_bytes_max = flush_bytes_max
        self._buffer_bytes_max = buffer_bytes_max
        self._backpressure_timeout_s = backpressure_timeout_ms / 1000
        self._commit_timeout_s = commit_timeout_ms / 1000
        # A segment's commit must reach the store within this of its seal, else it is refused
        # (its object is then an orphan for the GC); half the GC grace (docs/gc.md).
        self._commit_within_ms = commit_within_ms
        self._on_commit = on_commit
        self._on_uploaded = on_uploaded
        self._uploads = asyncio.Semaphore(uploads_in_flight_max)
        self._open = OpenSegment()
        self._last_seal_at = float("-inf")  # loop time of the last seal
        # Sealed segments in seal order; None tells the committer to stop. Bounded in practice
        # by buffer_bytes_max: every queued segment holds reserved buffer bytes.
        self._sealed: asyncio.Queue[SealedSegment | None] = asyncio.Queue()
        self._space_waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._buffered = 0
        self._committer: asyncio.Task[None] | None = None
        self._closed = False
        self.stats: dict[str, int] = {
            "appends": 0,
            "batches": 0,
            "segments": 0,
            "flushes_size": 0,
            "flushes_time": 0,
            "flushes_close": 0,
            "upload_failures": 0,
            "commits": 0,
            "commit_failures": 0,
            "backpressure_waits": 0,
            "backpressure_timeouts": 0,
        }

    @property
    def buffered_bytes(self) -> int:
        return self._buffered

    async def start(self) -> None:
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_loop(), name="segment-committer")

    async def close(self) -> None:
        """Seal what is buffered, upload and commit it, answer every waiter, then stop."""
        if self._closed:
            if self._committer is not None:
                await self._committer
            return
        self._closed = True
        while self._space_waiters:
            _, waiter = self._space_waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_Closed())
        if not self._open.empty:
            self._seal("close")
        await self.start()
        await self._sealed.put(None)
        assert self._committer is not None
        await self._committer

    async def append(self, items: list[AppendItem]) -> list[BatchOutcome]:
        """Answer per item, in order, once committed (or with a retriable error)."""
        return await (await self.submit(items))

    async def submit(self, items: list[AppendItem]) -> asyncio.Future[list[BatchOutcome]]:
        """Place the items in the open segment (after waiting for buffer space) and return the
        future of their outcomes. Callers that must keep an order between appends (one
        connection's Produce requests: idempotent sequences) hold their turn until this
        returns, not until the commit."""
        loop = asyncio.get_running_loop()
        if not items:
            return _done(loop, [])
        if self._closed or self._committer is None:
            return _done(loop, [BatchOutcome(NOT_LEADER_OR_FOLLOWER, -1)] * len(items))
        size = sum(len(item.data) for item in items)
        try:
            await self._reserve(size)
        except _Closed:
            return _done(loop, [BatchOutcome(NOT_LEADER_OR_FOLLOWER, -1)] * len(items))
        except TimeoutError:
            self.stats["backpressure_timeouts"] += 1
            return _done(loop, [BatchOutcome(REQUEST_TIMED_OUT, -1)] * len(items))
        if self._closed:
            self._release(size)
            return _done(loop, [BatchOutcome(NOT_LEADER_OR_FOLLOWER, -1)] * len(items))

        if not self._open.empty and self._open.data_bytes + size > self._flush_bytes_max:
            self._seal("size")
        entries = [
            BatchEntry(
                topic=item.topic,
                partition=item.partition,
                data=item.data,
                record_count=item.header.last_offset_delta + 1,
                base_timestamp=item.header.base_timestamp,
                max_timestamp=item.header.max_timestamp,
                producer_id=item.header.producer_id,
                producer_epoch=item.header.producer_epoch,
                base_sequence=item.header.base_sequence,
                attributes=item.header.attributes,
                topic_id=item.topic_id,
            )
            for item in items
        ]
        future: asyncio.Future[list[BatchOutcome]] = loop.create_future()
        segment = self._open
        first_bytes = segment.empty
        segment.add(entries, size, future)
        self.stats["appends"] += 1
        self.stats["batches"] += len(items)
        if segment.data_bytes >= self._flush_bytes_max:
            self._seal("size")
        elif first_bytes:
            # Seal one interval after the previous seal, not after this first byte: the PUT
            # rate stays at most one per interval, a request after a quiet spell is not held
            # back, and a producer that waits for its acks (5 requests in flight when
            # idempotent) is not held for an interval plus the upload on every round.
            delay = max(0.0, self._last_seal_at + self._flush_interval_s - loop.time())
            segment.timer = loop.call_later(delay, self._on_timer, segment)
        return future

    # -- buffer accounting ------------------------------------------------------------------
    async def _reserve(self, size: int) -> None:
        # FIFO: once someone waits, later appends queue behind it so large ones do not starve.
        # An append larger than the whole buffer is admitted when the buffer is empty.
        if not self._space_waiters and self._fits(size):
            self._take(size)
            return
        self.stats["backpressure_waits"] += 1
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, waiter)
        self._space_waiters.append(entry)
        try:
            async with asyncio.timeout(self._backpressure_timeout_s):
                await asyncio.shield(waiter)
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Space was granted just as we gave up: hand it back.
                self._release(size)
            elif entry in self._space_waiters:
                self._space_waiters.remove(entry)
                self._wake()
            raise

    def _fits(self, size: int) -> bool:
        return self._buffered == 0 or self._buffered + size <= self._buffer_bytes_max

    def _take(self, size: int) -> None:
        # The gauge is refreshed per segment (seal, release), not per append: it is hot.
        self._buffered += size

    def _release(self, size: int) -> None:
        self._buffered -= size
        metrics.WRITE_BUFFER_BYTES.set(self._buffered)
        self._wake()

    def _wake(self) -> None:
        while self._space_waiters:
            size, waiter = self._space_waiters[0]
            if waiter.done():
                self._space_waiters.popleft()
                continue
            if not self._fits(size):
                return
            self._space_waiters.popleft()
            self._take(size)
            waiter.set_result(None)

    # -- sealing and uploading --------------------------------------------------------------
    def _on_timer(self, segment: OpenSegment) -> None:
        segment.timer = None
        if segment is self._open and not segment.empty:
            self._seal("time")

    def _seal(self, reason: str) -> None:
        self._last_seal_at = asyncio.get_running_loop().time()
        sealed = self._open.seal(reason)
        self._open = OpenSegment()
        metrics.SEGMENT_FLUSHES.labels(reason=reason).inc()
        metrics.SEGMENT_BYTES.observe(sealed.size)
        metrics.SEGMENT_BATCHES.inc(len(sealed.placed))
        metrics.WRITE_BUFFER_BYTES.set(self._buffered)
        self.stats["segments"] += 1
        self.stats[f"flushes_{reason}"] += 1
        sealed.upload = asyncio.create_task(self._upload(sealed), name=f"upload-{sealed.file_id}")
        self._sealed.put_nowait(sealed)

    async def _upload(self, segment: SealedSegment) -> None:
        async with self._uploads:
            try:
                await self._store.put_create(segment.key, segment.data)
                if self._on_uploaded is not None:
                    try:
                        self._on_uploaded(segment.key, segment.data)
                    except Exception:
                        log.exception("on_uploaded listener failed")
            finally:
                segment.data = b""

    # -- committing -------------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        # Group commit: after waiting for the oldest segment's upload, every following segment
        # whose upload is already done joins its metadata transaction. The commit stage then
        # never falls behind the uploads (one transaction per commit round, however many
        # segments each round brings), while an idle writer still commits each segment at once.
        carry: SealedSegment | None = None
        stopping = False
        while not stopping:
            first = carry if carry is not None else await self._sealed.get()
            carry = None
            if first is None:
                return
            group = [first]
            await self._await_upload(first)
            while len(group) < COMMIT_GROUP_SEGMENTS_MAX:
                try:
                    following = self._sealed.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if following is None:
                    stopping = True
                    break
                assert following.upload is not None
                if not following.upload.done():
                    carry = following
                    break
                await self._await_upload(following)
                group.append(following)
            try:
                await self._commit_group(group)
            except Exception:  # never let one group stop the pipeline
                log.exception("segments %s: unexpected failure", [s.file_id for s in group])
                for segment in group:
                    segment.fail(KAFKA_STORAGE_ERROR)
            finally:
                for segment in group:
                    self._release(segment.buffered_bytes)

    async def _await_upload(self, segment: SealedSegment) -> None:
        """Wait for the upload; a failed one is answered at once (nothing was committed)."""
        assert segment.upload is not None
        try:
            await segment.upload
        except Exception as exc:
            self.stats["upload_failures"] += 1
            log.warning("segment %s: upload failed: %s", segment.key, exc)
            segment.fail(KAFKA_STORAGE_ERROR)
            segment.failed = True

    async def _commit_group(self, group: list[SealedSegment]) -> None:
        uploaded = [segment for segment in group if not segment.failed]
        if not uploaded:
            return
        crash_points.maybe_crash("after_put")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._commit_timeout_s):
                results = await self._meta.commit_files(
                    [
                        (segment.file_info(self._commit_within_ms), segment.pending_batches())
                        for segment in uploaded
                    ]
                )
        except Exception as exc:
            self.stats["commit_failures"] += 1
            log.warning("segments %s: commit failed: %s", [s.key for s in uploaded], exc)
            for segment in uploaded:
                segment.fail(REQUEST_TIMED_OUT)
            return
        finally:
            metrics.COMMIT_LATENCY.observe(time.perf_counter() - started)
        self.stats["commits"] += 1
        crash_points.maybe_crash("after_commit")
        marks: dict[tuple[str, int], int] = {}
        for segment, outcomes in zip(uploaded, results, strict=True):
            if len(outcomes) != len(segment.placed):
                log.error(
                    "segment %s: %d outcomes for %d batches",
                    segment.key, len(outcomes), len(segment.placed),
                )
                segment.fail(REQUEST_TIMED_OUT)
                continue
            segment.answer(outcomes)
            for topic, partition, mark in segment.high_watermarks(outcomes):
                if mark > marks.get((topic, partition), -1):
                    marks[(topic, partition)] = mark
        if marks:
            try:
                self._on_commit([(t, p, m) for (t, p), m in marks.items()])
            except Exception:
                log.exception("on_commit callback failed")


class _Closed(Exception):
    pass


def _done(
    loop: asyncio.AbstractEventLoop, outcomes: list[BatchOutcome]
) -> asyncio.Future[list[BatchOutcome]]:
    future: asyncio.Future[list[BatchOutcome]] = loop.create_future()
    future.set_result(outcomes)
    return future
