"""The metadata store interface: the one place that decides order.

Two implementations share this interface and one contract test suite: SQLite (embedded) and
PostgreSQL (clusters). Every mutation is one transaction. Offsets are assigned only by
`commit_file`, so concurrent agents can never hand out the same offset twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol


class MetadataError(Exception):
    """The store could not complete an operation (retriable from the client's view)."""


class TopicExistsError(MetadataError):
    pass


class UnknownTopicError(MetadataError):
    pass


class InvalidPartitionsError(MetadataError):
    pass


class ProducerFencedError(MetadataError):
    """InitProducerId named a (producer_id, epoch) that is not the current one of the
    transactional id: a newer producer instance has taken over (Kafka's PRODUCER_FENCED)."""


class DuplicateFileError(MetadataError):
    """`commit_file` was called twice for one file id; the first call's result stands."""


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PartitionState:
    log_start_offset: int
    high_watermark: int  # the next offset to be assigned


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A segment file that was PUT to the object store and is being committed."""

    file_id: str
    key: str  # object key in the store
    size: int


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """One validated RecordBatch inside a segment file, waiting for its offsets."""

    topic: str
    partition: int
    byte_pos: int  # position of the batch in the segment file
    byte_len: int
    record_count: int  # lastOffsetDelta + 1 (offsets the batch occupies)
    base_timestamp: int
    max_timestamp: int
    producer_id: int  # -1 when not idempotent
    producer_epoch: int
    base_sequence: int
    is_transactional: bool = False


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """Result of committing one PendingBatch (same order as the input)."""

    error_code: int  # 0, or a Kafka error code (e.g. 45, 47, 3)
    base_offset: int  # assigned (or, for a duplicate, the original) base offset; -1 on error
    log_start_offset: int = -1
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class BatchRow:
    """An index row: where one committed batch lives."""

    base_offset: int
    last_offset: int
    file_key: str
    file_size: int
    byte_pos: int
    byte_len: int
    record_count: int
    max_timestamp: int


@dataclass(frozen=True, slots=True)
class OffsetAtTime:
    offset: int
    timestamp: int


class MetadataStore(Protocol):
    async def start(self) -> None:
        """Open connections and apply schema migrations."""

    async def close(self) -> None: ...

    # -- topics ------------------------------------------------------------------------------
    async def create_topic(
        self, name: str, partitions: int, configs: dict[str, str]
    ) -> TopicInfo:
        """Raises TopicExistsError."""

    async def delete_topic(self, name: str) -> None:
        """Drops the topic, its partitions and index rows. Raises UnknownTopicError."""

    async def get_topic(self, name: str) -> TopicInfo | None: ...

    async def get_topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None: ...

    async def list_topics(self) -> list[TopicInfo]: ...

    async def create_partitions(self, name: str, total: int) -> TopicInfo:
        """Grow to `total` partitions. Raises UnknownTopicError, InvalidPartitionsError."""

    async def set_topic_configs(self, name: str, configs: dict[str, str | None]) -> TopicInfo:
        """Set (value) or delete (None) config keys. Raises UnknownTopicError."""

    async def replace_topic_configs(self, name: str, configs: dict[str, str]) -> TopicInfo:
        """Replace the whole config map (legacy AlterConfigs). Raises UnknownTopicError."""

    # -- partitions and the index -----------------------------------------------------------
    async def partition_state(self, topic: str, partition: int) -> PartitionState | None: ...

    async def partition_states(
        self, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], PartitionState]:
        """Batched form for long-poll checks; unknown partitions are left out."""

    async def commit_file(self, file: FileInfo, batches: list[PendingBatch]) -> list[BatchOutcome]:
        """One transaction: record the file, assign offsets, store index rows, check producer
        sequences. Batches of one partition are assigned offsets in list order. A batch of an
        unknown topic/partition gets error 3. Idempotent producers: a batch equal to one of the
        last 5 of (producer, partition) returns its original offsets with duplicate=True and no
        index row; a sequence gap gets 45; an epoch older than the stored one gets 47.
        If no batch got offsets, the file is still recorded (it is garbage then)."""

    async def commit_files(
        self, files: list[tuple[FileInfo, list[PendingBatch]]]
    ) -> list[list[BatchOutcome]]:
        """`commit_file` for several files in one transaction (group commit), in list order: a
        later file sees the offsets and producer sequences of the earlier ones. All or none:
        any error leaves nothing committed."""

    async def read_batches(
        self, topic: str, partition: int, offset: int, max_bytes: int, max_batches: int = 1000
    ) -> list[BatchRow]:
        """Ordered index rows with last_offset >= offset, stopping once max_bytes is reached
        (the first row is always included)."""

    async def offset_for_timestamp(
        self, topic: str, partition: int, timestamp: int
    ) -> OffsetAtTime | None:
        """First batch whose max_timestamp >= timestamp (batch granularity)."""

    async def max_timestamp_offset(self, topic: str, partition: int) -> OffsetAtTime | None:
        """The batch holding the largest timestamp (ties: earliest)."""

    # -- maintenance ---------------------------------------------------------------------------
    async def unreferenced_files(self, created_before_ms: int, limit: int = 1000) -> list[FileInfo]:
        """Files recorded before `created_before_ms` that no index row points into."""

    async def forget_files(self, file_ids: list[str]) -> list[str]:
        """Drop the records of files still unreferenced; returns the ids dropped."""

    async def advance_log_start(
        self, topic: str, partition: int, offset: int
    ) -> PartitionState | None:
        """Retention / DeleteRecords: move the log start up (never back), drop rows below."""

    async def expire_producers(self, idle_before_ms: int) -> int:
        """Forget idempotence state untouched since `idle_before_ms`."""

    # -- producers ---------------------------------------------------------------------------
    async def init_producer(
        self, transactional_id: str | None, producer_id: int, producer_epoch: int
    ) -> tuple[int, int]:
        """Allocate a new producer id (epoch 0), or bump the epoch of a given one / of the
        transactional id's. Returns (producer_id, producer_epoch)."""
