"""The commit decision: offsets and Kafka's idempotence rules, shared by both backends.

Both the SQLite and the PostgreSQL store load the same state inside their commit transaction
(partition cursors, producer entries), hand it to `plan_commit`, and write back what the plan
says. Keeping the rules here, apart from any I/O, means both stores decide exactly alike and
the rules are tested without a database (tests/unit/test_meta_decisions.py).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from shoal.meta.store import BatchOutcome, CommitDeadlineError, FileInfo, PendingBatch
from shoal.protocol.errors import (
    INVALID_PRODUCER_EPOCH,
    INVALID_RECORD,
    NONE,
    OUT_OF_ORDER_SEQUENCE_NUMBER,
    UNKNOWN_TOPIC_OR_PARTITION,
)

INT32_MAX = 2**31 - 1
# Kafka keeps the metadata of the last 5 batches per producer and partition (max in-flight).
RECENT_BATCHES_MAX = 5


PartitionKey = tuple[str, int]
ProducerKey = tuple[int, str, int]  # (producer_id, topic, partition)
RecentBatch = tuple[int, int, int]  # (base_sequence, last_sequence, base_offset)
# Stored form of the recent batches: a BLOB (bytea) of big-endian records, oldest first.
_RECENT = struct.Struct(">iiq")


def check_deadline(file: FileInfo, now_ms: int) -> None:
    """Refuse a file whose commit comes too late. Called inside the commit transaction, after
    its locks are held, with the time read then: a commit that waited for a lock past the
    deadline is refused too."""
    if file.commit_by_ms is not None and now_ms > file.commit_by_ms:
        raise CommitDeadlineError(
            f"file {file.file_id}: commit {now_ms - file.commit_by_ms} ms past its deadline"
        )


@dataclass(slots=True)
class PartitionCursor:
    next_offset: int
    log_start_offset: int
    advanced: bool = False


@dataclass(slots=True)
class ProducerEntry:
    epoch: int
    recent: list[RecentBatch] = field(default_factory=list)  # oldest first

    def encode_recent(self) -> bytes:
        return b"".join(_RECENT.pack(*r) for r in self.recent)

    @staticmethod
    def decode(epoch: int, recent: bytes) -> ProducerEntry:
        return ProducerEntry(epoch, list(_RECENT.iter_unpack(recent)))


@dataclass(slots=True)
class CommitPlan:
    outcomes: list[BatchOutcome]
    rows: list[tuple[PendingBatch, int]]  # (batch, assigned base offset), in input order
    partitions: dict[PartitionKey, PartitionCursor]  # only `advanced` ones need writing
    producers: dict[ProducerKey, ProducerEntry]  # entries that changed


def last_sequence(base_sequence: int, record_count: int) -> int:
    """Sequence of the batch's last record; sequences wrap from INT32_MAX to 0."""
    return (base_sequence + record_count - 1) % (INT32_MAX + 1)


def next_sequence(sequence: int) -> int:
    return 0 if sequence == INT32_MAX else sequence + 1


def _check_producer(
    entry: ProducerEntry | None, batch: PendingBatch, last_seq: int
) -> tuple[int, int | None]:
    """Kafka's ProducerStateManager rules. Returns (error_code, original base offset of a
    duplicate or None)."""
    if entry is None:
        # No state: Kafka accepts any sequence (the state may have expired).
        return NONE, None
    if batch.producer_epoch < entry.epoch:
        return INVALID_PRODUCER_EPOCH, None
    if batch.base_sequence < 0:
        return NONE, None
    if batch.producer_epoch > entry.epoch:
        # A bumped epoch restarts sequences at 0.
        return (NONE if batch.base_sequence == 0 else OUT_OF_ORDER_SEQUENCE_NUMBER), None
    for base_seq, last_seq_seen, base_offset in entry.recent:
        if base_seq == batch.base_sequence and last_seq_seen == last_seq:
            return NONE, base_offset
    if entry.recent and batch.base_sequence != next_sequence(entry.recent[-1][1]):
        return OUT_OF_ORDER_SEQUENCE_NUMBER, None
    return NONE, None


def plan_commit(
    batches: list[PendingBatch],
    partitions: Mapping[PartitionKey, tuple[int, int]],
    producers: Mapping[ProducerKey, ProducerEntry],
    topic_ids: Mapping[str, uuid.UUID] | None = None,
) -> CommitPlan:
    """Assign offsets and apply idempotence rules to `batches`, in order.

    `partitions` maps every known partition among the batches to (next_offset,
    log_start_offset); `producers` holds the stored entry of every (producer, partition) among
    the batches that has one; `topic_ids` the current id of every topic among the batches (a
    batch validated against another id, a topic deleted since, is refused). No mapping is
    modified.
    """
    cursors = {k: PartitionCursor(v[0], v[1]) for k, v in partitions.items()}
    changed: dict[ProducerKey, ProducerEntry] = {}
    outcomes: list[BatchOutcome] = []
    rows: list[tuple[PendingBatch, int]] = []
    for batch in batches:
        cursor = cursors.get((batch.topic, batch.partition))
        if cursor is None or (
            batch.topic_id is not None
            and topic_ids is not None
            and topic_ids.get(batch.topic) != batch.topic_id
        ):
            outcomes.append(BatchOutcome(UNKNOWN_TOPIC_OR_PARTITION, -1))
            continue
        if batch.record_count < 1:
            outcomes.append(BatchOutcome(INVALID_RECORD, -1, cursor.log_start_offset))
            continue
        pkey: ProducerKey | None = None
        entry: ProducerEntry | None = None
        last_seq = -1
        if batch.producer_id >= 0:
            pkey = (batch.producer_id, batch.topic, batch.partition)
            entry = changed.get(pkey) or producers.get(pkey)
            last_seq = last_sequence(batch.base_sequence, batch.record_count)
            code, original = _check_producer(entry, batch, last_seq)
            if code != NONE:
                outcomes.append(BatchOutcome(code, -1, cursor.log_start_offset))
                continue
            if original is not None:
                outcomes.append(BatchOutcome(NONE, original, cursor.log_start_offset, True))
                continue
        base = cursor.next_offset
        cursor.next_offset = base + batch.record_count
        cursor.advanced = True
        rows.append((batch, base))
        outcomes.append(BatchOutcome(NONE, base, cursor.log_start_offset))
        if pkey is not None:
            changed[pkey] = _advance(entry, batch, last_seq, base)
    return CommitPlan(outcomes, rows, cursors, changed)


def index_row(batch: PendingBatch, base_offset: int, file_ref: int | None) -> tuple[object, ...]:
    """The `batches` row of a committed batch, in the table's column order."""
    return (
        batch.topic,
        batch.partition,
        base_offset,
        base_offset + batch.record_count - 1,
        file_ref,
        batch.byte_pos,
        batch.byte_len,
        batch.record_count,
        batch.max_timestamp,
        batch.producer_id,
        batch.producer_epoch,
        batch.base_sequence,
    )


def _advance(
    entry: ProducerEntry | None, batch: PendingBatch, last_seq: int, base_offset: int
) -> ProducerEntry:
    if entry is None or batch.producer_epoch != entry.epoch:
        recent: list[RecentBatch] = []
    else:
        recent = list(entry.recent)
    if batch.base_sequence >= 0:
        recent.append((batch.base_sequence, last_seq, base_offset))
    return ProducerEntry(batch.producer_epoch, recent[-RECENT_BATCHES_MAX:])
