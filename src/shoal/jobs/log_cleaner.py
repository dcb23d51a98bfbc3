"""The log cleaner of compacted topics (`cleanup.policy` with `compact`; jobs role, run in the
file compactor's cycle, before its merges, every `--compaction-interval-ms`: one at a time, so
their swaps do not race each other).

For each partition that is due (`cleaning.CleanerConfig.is_due`), two streaming passes over the
index rows, reading batch bytes from the object store in ranged GETs of at most
`SPAN_BYTES_MAX` of consecutive rows of one file:

1. the key map of the dirty section [cleaned_to, end), where `end` is the first batch kept out
   by `min.compaction.lag.ms` (or the high watermark), or the batch that no longer fit the map;
2. from the log start to `end`, every batch with a superseded record (or an expired tombstone)
   is rewritten without it (`record_filter.filter_batch`: offsets, lastOffsetDelta and the
   producer fields stay, so offsets keep their gaps as in Kafka), and a batch left with no
   record is dropped. Rewritten batches go to new segment files of up to the compaction
   target, and each file is swapped in with `swap_files`, which moves or drops only the rows
   still where they were read (file compaction and retention may run meanwhile).

Records are decoded only here and in Produce's key check, each batch's decompression bounded
(`records.DECOMPRESSED_BYTES_MAX`). A batch that cannot be decoded stays as it is. Control
batches stay as they are. `cleaned_to` is kept in memory: after a restart the first cleaning
of a partition reads all of it again (one pass more, never a wrong answer). It moves only when
every swap of the cleaning applied whole: a row that retention, a topic deletion or another
agent's job moved meanwhile leaves the partition dirty for the next cycle.

Cost per cleaning of a partition of B bytes with D dirty bytes: about (B + D) / 8 MiB ranged
GETs (fewer once file compaction made the files large), one PUT per 64 MiB rewritten, and one
metadata transaction per PUT.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import Counter

from shoal.jobs.cleaning import CleanerConfig, KeyMap
from shoal.meta.store import BatchRow, DuplicateFileError, FileInfo, FileRow, RowMove
from shoal.protocol.batch import BatchError, parse_header
from shoal.protocol.record_filter import RecordKeyInfo, filter_batch, record_keys
from shoal.write.segment_format import (
    BatchEntry,
    encode_segment,
    file_id_ms,
    new_file_id,
    segment_file_id,
    segment_key,
)

if TYPE_CHECKING:
    from shoal.meta.store import MetadataStore
    from shoal.objstore.store import ObjectStore

log = logging.getLogger(__name__)

SPAN_BYTES_MAX = 8 * 1024 * 1024
_PAGE_ROWS = 2000
_PAGE_BYTES = 64 * 1024 * 1024

CLEANER_PARTITIONS = Counter(
    "shoal_log_cleaner_partitions_total", "Partitions of compacted topics cleaned"
)
CLEANER_BATCHES = Counter(
    "shoal_log_cleaner_batches_total",
    "Batches the log cleaner rewrote (fewer records) or dropped (no record left)",
    ["outcome"],
)
CLEANER_ERRORS = Counter(
    "shoal_log_cleaner_errors_total", "Batches the log cleaner could not decode"
)

# (topic, partition, topic id): a re-created topic starts dirty.
_Key = tuple[str, int, uuid.UUID | None]


@dataclass(slots=True)
class CleanResult:
    partitions: int = 0
    rewritten: int = 0
    dropped: int = 0
    files: int = 0


@dataclass(slots=True)
class _Output:
    """Rewritten batches waiting for their file, and rows waiting to be dropped."""

    entries: list[BatchEntry] = field(default_factory=list)
    rows: list[FileRow] = field(default_factory=list)
    drops: list[FileRow] = field(default_factory=list)
    bytes: int = 0


class LogCleaner:
    def __init__(
        self,
        store: ObjectStore,
        meta: MetadataStore,
        *,
        file_bytes_target: int,
        commit_within_ms: int,
        partitions_per_cycle_max: int = 64,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        if file_bytes_target <= 0 or partitions_per_cycle_max <= 0:
            raise ValueError("cleaner file target and partitions must be positive")
        self._store = store
        self._meta = meta
        self.file_bytes_target = file_bytes_target
        self._commit_within_ms = commit_within_ms
        self.partitions_per_cycle_max = partitions_per_cycle_max
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._cleaned_to: dict[_Key, int] = {}
        self.stats: dict[str, int] = {"cycles": 0, "partitions": 0, "rewritten": 0,
                                      "dropped": 0}  # fmt: skip

    async def run_once(self) -> CleanResult:
        now_ms = self._clock_ms()
        result = CleanResult()
        for topic in await self._meta.list_topics():
            config = CleanerConfig.of(topic)
            if config is None:
                continue
            for partition in range(topic.partitions):
                if result.partitions >= self.partitions_per_cycle_max:
                    break
                if await self._clean_if_due(topic.name, partition, config, now_ms, result):
                    result.partitions += 1
        self.stats["cycles"] += 1
        for name in ("partitions", "rewritten", "dropped"):
            self.stats[name] += getattr(result, name)
        return result

    async def _clean_if_due(
        self, topic: str, partition: int, config: CleanerConfig, now_ms: int, result: CleanResult
    ) -> bool:
        state = await self._meta.partition_state(topic, partition)
        if state is None:
            return False
        key: _Key = (topic, partition, state.topic_id)
        cleaned_to = max(self._cleaned_to.get(key, state.log_start_offset), state.log_start_offset)
        first = await self._meta.read_batches(topic, partition, cleaned_to, 1, 1)
        first_ts = first[0].max_timestamp if first else None
        if not config.is_due(
            state.log_start_offset, cleaned_to, state.high_watermark, first_ts, now_ms
        ):
            return False
        young = await self._meta.offset_for_timestamp(
            topic, partition, config.cleanable_before_ms(now_ms)
        )
        end = state.high_watermark if young is None else min(young.offset, state.high_watermark)
        if end <= cleaned_to:
            return False
        keys = KeyMap()
        try:
            end = await self._build_map(topic, partition, cleaned_to, end, keys)
        except BatchError as exc:
            log.warning("log cleaner: %s-%d not cleaned: %s", topic, partition, exc)
            CLEANER_ERRORS.inc()
            return False
        expire_before = now_ms - config.delete_retention_ms
        out = _Output()
        whole = True
        async for row, batch in self._batches(topic, partition, state.log_start_offset, end):
            await self._clean_batch(topic, partition, row, batch, keys, expire_before, out)
            if out.bytes >= self.file_bytes_target:
                whole &= await self._swap(out, result)
                out = _Output()
        whole &= await self._swap(out, result)
        if whole:
            self._cleaned_to[key] = end
        CLEANER_PARTITIONS.inc()
        return True

    async def _build_map(
        self, topic: str, partition: int, start: int, end: int, keys: KeyMap
    ) -> int:
        """Fill `keys` from [start, end); returns where the dirty section ends (earlier than
        `end` when the map filled)."""
        async for row, batch in self._batches(topic, partition, start, end):
            if parse_header(batch).is_control:
                continue
            records = record_keys(batch)
            if not keys.fits(records):
                return row.base_offset
            keys.put_batch(row.base_offset, records)
        return end

    async def _clean_batch(
        self,
        topic: str,
        partition: int,
        row: BatchRow,
        batch: memoryview,
        keys: KeyMap,
        expire_before_ms: int,
        out: _Output,
    ) -> None:
        header = parse_header(batch)
        file_id = segment_file_id(row.file_key)
        if header.is_control or file_id is None:
            return
        try:
            records: list[RecordKeyInfo] = record_keys(batch)
            kept = keys.kept_deltas(row.base_offset, records, expire_before_ms)
            if len(kept) == len(records):
                return
            rewritten = filter_batch(batch, kept) if kept else None
        except BatchError as exc:
            log.warning("log cleaner: %s-%d at %d left as it is: %s",
                        topic, partition, row.base_offset, exc)  # fmt: skip
            CLEANER_ERRORS.inc()
            return
        file_row = FileRow(file_id, topic, partition, row.base_offset, row.last_offset,
                           row.byte_pos, row.byte_len)  # fmt: skip
        if rewritten is None:
            out.drops.append(file_row)
            return
        out.entries.append(BatchEntry(
            topic, partition, rewritten, header.last_offset_delta + 1, header.base_timestamp,
            header.max_timestamp, header.producer_id, header.producer_epoch,
            header.base_sequence, header.attributes,
        ))  # fmt: skip
        out.rows.append(file_row)
        out.bytes += len(rewritten)

    async def _swap(self, out: _Output, result: CleanResult) -> bool:
        """Swap `out` in; whether every row of it was still where it was read."""
        if not out.entries and not out.drops:
            return True
        file: FileInfo | None = None
        moves: list[RowMove] = []
        if out.entries:
            data, placed = encode_segment(out.entries)
            file_id = new_file_id()
            key = segment_key(file_id)
            await self._store.put_create(key, data)
            file = FileInfo(file_id, key, len(data),
                            commit_by_ms=file_id_ms(file_id) + self._commit_within_ms)  # fmt: skip
            moves = [RowMove(r, p.byte_pos, p.byte_len)
                     for r, p in zip(out.rows, placed, strict=True)]  # fmt: skip
        try:
            swap = await self._meta.swap_files(file, 0, moves, out.drops)
        except DuplicateFileError:
            log.warning("log cleaner: file %s was claimed by the GC", file and file.file_id)
            return False
        result.rewritten += swap.moved
        result.dropped += swap.dropped
        result.files += 1 if file is not None else 0
        CLEANER_BATCHES.labels(outcome="rewritten").inc(swap.moved)
        CLEANER_BATCHES.labels(outcome="dropped").inc(swap.dropped)
        return swap.moved == len(moves) and swap.dropped == len(out.drops)

    async def _rows(
        self, topic: str, partition: int, start: int, end: int
    ) -> AsyncIterator[BatchRow]:
        offset = start
        while offset < end:
            page = await self._meta.read_batches(topic, partition, offset, _PAGE_BYTES, _PAGE_ROWS)
            if not page:
                return
            for row in page:
                if row.base_offset >= end:
                    return
                yield row
            offset = page[-1].last_offset + 1

    async def _batches(
        self, topic: str, partition: int, start: int, end: int
    ) -> AsyncIterator[tuple[BatchRow, memoryview]]:
        """Each row of [start, end) with its batch's bytes, read in spans of consecutive rows
        of one file."""
        span: list[BatchRow] = []
        async for row in self._rows(topic, partition, start, end):
            if span and not _extends(span, row):
                async for item in self._load(span):
                    yield item
                span = []
            span.append(row)
        async for item in self._load(span):
            yield item

    async def _load(self, span: list[BatchRow]) -> AsyncIterator[tuple[BatchRow, memoryview]]:
        if not span:
            return
        low, high = span[0].byte_pos, span[-1].byte_pos + span[-1].byte_len
        data = memoryview(await self._store.get_range(span[0].file_key, low, high))
        for row in span:
            yield row, data[row.byte_pos - low : row.byte_pos - low + row.byte_len]


def _extends(span: list[BatchRow], row: BatchRow) -> bool:
    """`row` continues `span`: the same file, further on, within SPAN_BYTES_MAX."""
    last = span[-1]
    return (
        row.file_key == last.file_key
        and row.byte_pos >= last.byte_pos + last.byte_len
        and row.byte_pos + row.byte_len - span[0].byte_pos <= SPAN_BYTES_MAX
    )
