"""The open segment (batches gathering before a seal) and sealed segments (one file each).

An open segment holds references to the clients' batch bytes; sealing copies them once, into
the file (one join), after which the per-batch bytes are dropped.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from shoal.meta.store import BatchOutcome, FileInfo, PendingBatch
from shoal.write.segment_format import (
    BatchEntry,
    FooterEntry,
    encode_segment,
    file_id_ms,
    new_file_id,
    segment_key,
)


@dataclass(slots=True)
class PendingAppend:
    """One `append` call: its batches are entries [first, first + count) of the segment."""

    future: asyncio.Future[list[BatchOutcome]]
    first: int
    count: int

    def answer(self, outcomes: list[BatchOutcome]) -> None:
        # The caller may have been cancelled (client went away); the data is still committed.
        if not self.future.done():
            self.future.set_result(outcomes[self.first : self.first + self.count])

    def fail(self, error_code: int) -> None:
        if not self.future.done():
            self.future.set_result([BatchOutcome(error_code, -1)] * self.count)


class OpenSegment:
    __slots__ = ("appends", "data_bytes", "entries", "opened_at", "timer")

    def __init__(self) -> None:
        self.entries: list[BatchEntry] = []
        self.appends: list[PendingAppend] = []
        self.data_bytes = 0
        self.opened_at = time.monotonic()
        self.timer: asyncio.TimerHandle | None = None

    @property
    def empty(self) -> bool:
        return not self.entries

    def add(
        self, entries: list[BatchEntry], size: int, future: asyncio.Future[list[BatchOutcome]]
    ) -> None:
        self.appends.append(PendingAppend(future, len(self.entries), len(entries)))
        self.entries.extend(entries)
        self.data_bytes += size

    def seal(self, reason: str) -> SealedSegment:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        file_id = new_file_id()
        data, placed = encode_segment(self.entries)
        topic_ids = [e.topic_id for e in self.entries]
        sealed = SealedSegment(
            file_id=file_id,
            key=segment_key(file_id),
            data=data,
            size=len(data),
            placed=placed,
            topic_ids=topic_ids,
            appends=self.appends,
            buffered_bytes=self.data_bytes,
            reason=reason,
        )
        self.entries = []
        self.appends = []
        return sealed


@dataclass(slots=True)
class SealedSegment:
    file_id: str
    key: str
    data: bytes  # released once uploaded
    size: int
    placed: list[FooterEntry]
    topic_ids: list[uuid.UUID | None]  # per placed entry: the topic id it was validated against
    appends: list[PendingAppend]
    buffered_bytes: int  # what its appends reserved from the write buffer
    reason: str
    upload: asyncio.Task[None] | None = None
    failed: bool = False  # its upload failed; its appends were answered
    sealed_at: float = field(default_factory=time.monotonic)

    def file_info(self, commit_within_ms: int | None = None) -> FileInfo:
        """The file record to commit; with `commit_within_ms`, the store refuses the commit
        once that long has passed since the seal (the time in the file id, which is also
        where the GC counts a file's age from)."""
        if commit_within_ms is None:
            return FileInfo(self.file_id, self.key, self.size)
        deadline = file_id_ms(self.file_id) + commit_within_ms
        return FileInfo(self.file_id, self.key, self.size, deadline)

    def pending_batches(self) -> list[PendingBatch]:
        # Input (arrival) order; within a partition that is file order, which is the order the
        # metadata store assigns offsets in.
        return [
            PendingBatch(
                topic=e.topic,
                partition=e.partition,
                byte_pos=e.byte_pos,
                byte_len=e.byte_len,
                record_count=e.record_count,
                base_timestamp=e.base_timestamp,
                max_timestamp=e.max_timestamp,
                producer_id=e.producer_id,
                producer_epoch=e.producer_epoch,
                base_sequence=e.base_sequence,
                is_transactional=e.is_transactional,
                topic_id=topic_id,
            )
            for e, topic_id in zip(self.placed, self.topic_ids, strict=True)
        ]

    def answer(self, outcomes: list[BatchOutcome]) -> None:
        for pending in self.appends:
            pending.answer(outcomes)

    def fail(self, error_code: int) -> None:
        for pending in self.appends:
            pending.fail(error_code)

    def high_watermarks(self, outcomes: list[BatchOutcome]) -> list[tuple[str, int, int]]:
        """(topic, partition, next offset) for partitions this commit advanced."""
        marks: dict[tuple[str, int], int] = {}
        for entry, outcome in zip(self.placed, outcomes, strict=False):
            if outcome.error_code or outcome.duplicate or outcome.base_offset < 0:
                continue
            key = (entry.topic, entry.partition)
            end = outcome.base_offset + entry.record_count
            if end > marks.get(key, -1):
                marks[key] = end
        return [(t, p, hw) for (t, p), hw in marks.items()]
