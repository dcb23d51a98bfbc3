"""The metadata store interface: the one place that decides order.

`MetadataStore` is the one protocol every backend implements whole (topics, the index and
commits, producers, maintenance, consumer groups, agents, high-watermark notifications) and
that `open_metadata_store` returns. Two implementations share it and one contract test suite:
SQLite (embedded) and PostgreSQL (clusters). Every mutation is one transaction. Offsets are
assigned only by `commit_file`, so concurrent agents can never hand out the same offset twice.

The rows of groups and agents live beside this module (`group_store`, `agent_store`); the
decisions both backends share live in modules named for what they decide (`commits`,
`producers`, `maintenance`, `topics`, `groups`, `agents`, `migrations`); see
docs/metadata-store.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from shoal.meta.agent_store import AgentInfo
from shoal.meta.group_store import CommittedOffset, GroupListing, StoredGroup

# Receives [(topic, partition, high_watermark), ...] of commits made by any agent.
HwmCallback = Callable[[list[tuple[str, int, int]]], None]


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


class StaleCoordinatorError(MetadataError):
    """A group write carried a coordinator epoch older than the group's: another agent has
    claimed the group since (`claim_group`); nothing was written."""


class CommitDeadlineError(MetadataError):
    """A file's commit reached the store after its `commit_by_ms`; nothing was written. Its
    object may already be deleted by garbage collection, so it must never be indexed."""


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def cleanup_policies(self) -> frozenset[str]:
        """Its `cleanup.policy` (`delete`, `compact` or both; Kafka's default is `delete`)."""
        return frozenset(p.strip() for p in self.configs.get("cleanup.policy", "delete").split(","))


@dataclass(frozen=True, slots=True)
class PartitionState:
    log_start_offset: int
    high_watermark: int  # the next offset to be assigned
    # The topic the partition belongs to, by id: a deleted and re-created topic has a new one,
    # so what a reader cached of the old topic (index rows) is keyed by it and never served for
    # the new. Set by `partition_state(s)`; states compare by their offsets alone.
    topic_id: uuid.UUID | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A segment file that was PUT to the object store and is being committed."""

    file_id: str
    key: str  # object key in the store
    size: int
    # Epoch ms (the committing store's clock) after which the store refuses to commit the file
    # (CommitDeadlineError). The GC may delete an uncommitted file once it is older than its
    # grace, so a writer's commit must land well before that (docs/gc.md); None: no deadline
    # (the GC's own claims).
    commit_by_ms: int | None = None


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
    # The topic the batch was validated against: the commit refuses it (UNKNOWN_TOPIC_OR_PARTITION)
    # if the topic of that name now has another id (deleted and re-created meanwhile).
    topic_id: uuid.UUID | None = None


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
class CompactionFile:
    """A segment file that index rows still point into, as file compaction chooses them."""

    file_id: str
    key: str
    size: int
    level: int  # 0: written by a producer's flush; n + 1: merged from files of level <= n
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class FileRow:
    """An index row as compaction sees it: which batch, and where it is in which file."""

    file_id: str
    topic: str
    partition: int
    base_offset: int
    last_offset: int
    byte_pos: int
    byte_len: int


@dataclass(frozen=True, slots=True)
class RowMove:
    """Point `row` at (`byte_pos`, `byte_len`) of the file being swapped in, if it is still
    where `row` says (same file, same position): the check that makes a swap safe beside
    retention, topic deletion and another compactor."""

    row: FileRow
    byte_pos: int
    byte_len: int


@dataclass(frozen=True, slots=True)
class SwapResult:
    moved: int  # rows now pointing into the new file
    dropped: int  # rows deleted (compacted topics: every record of the batch superseded)
    released: int  # old files left without rows (deleted by the GC one grace later)


@dataclass(frozen=True, slots=True)
class OffsetAtTime:
    offset: int
    timestamp: int


class MetadataStore(Protocol):
    async def start(self) -> None:
        """Open connections and apply schema migrations."""

    async def close(self) -> None: ...

    async def schema_version(self) -> int:
        """The schema version the database is at (its last applied migration)."""

    async def subscribe_high_watermarks(self, callback: HwmCallback) -> None:
        """Call `callback` whenever any agent commits, with the partitions it advanced.
        A hint only: notifications may be lost, so long polls keep polling as well. A backend
        without a notification channel documents that it never calls `callback`."""

    # -- topics ------------------------------------------------------------------------------
    async def create_topic(
        self, name: str, partitions: int, configs: dict[str, str]
    ) -> TopicInfo:
        """Raises TopicExistsError."""

    async def delete_topic(self, name: str, topic_id: uuid.UUID | None = None) -> None:
        """Drops the topic, its partitions and index rows. With `topic_id`, only if the topic
        named `name` still has that id (a re-created topic is left alone). Raises
        UnknownTopicError."""

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

    async def offset_keeping_bytes(
        self, topic: str, partition: int, retained_bytes: int
    ) -> int | None:
        """Retention by size: the base offset of the newest batch from which the partition's
        batches to its end hold at least `retained_bytes` (Kafka keeps at least retention.bytes);
        None when the whole partition holds less."""

    # -- maintenance ---------------------------------------------------------------------------
    async def unreferenced_files(self, created_before_ms: int, limit: int = 1000) -> list[FileInfo]:
        """Files recorded before `created_before_ms` that no index row points into."""

    async def forget_files(self, file_ids: list[str]) -> list[str]:
        """Drop the records of files still unreferenced; returns the ids dropped."""

    async def advance_log_start(
        self, topic: str, partition: int, offset: int
    ) -> PartitionState | None:
        """Retention / DeleteRecords: move the log start up (never back), drop rows below."""

    async def compaction_candidates(
        self, size_below: int, created_before_ms: int, limit: int = 1000
    ) -> list[CompactionFile]:
        """Files smaller than `size_below` bytes, recorded before `created_before_ms`, that
        index rows point into, oldest first: what file compaction may merge."""

    async def file_rows(self, file_ids: list[str]) -> list[FileRow]:
        """The index rows pointing into these files, by topic, partition and offset."""

    async def swap_files(
        self, file: FileInfo | None, level: int, moves: list[RowMove], drops: list[FileRow]
    ) -> SwapResult:
        """One transaction: record `file` (of compaction `level`), point each row of `moves`
        that is still where it says at its place in `file`, delete each row of `drops` that is
        still where it says, and stamp the old files left without rows as released. Rows that
        moved or went meanwhile are left alone. Without `file` (a cleaning that only drops
        rows), `moves` must be empty. Raises DuplicateFileError (the GC claimed the file as an
        orphan) and CommitDeadlineError, as `commit_file`."""

    async def expire_producers(self, idle_before_ms: int) -> int:
        """Forget idempotence state untouched since `idle_before_ms`."""

    async def expire_offsets(self, expired_before_ms: int) -> tuple[int, int]:
        """Drop the committed offsets of groups Empty since before the cutoff (and of
        commit-only groups, each offset committed before it), then such groups left without
        offsets: Kafka's offsets.retention.minutes. Returns (offsets, groups) removed."""

    # -- producers ---------------------------------------------------------------------------
    async def init_producer(
        self, transactional_id: str | None, producer_id: int, producer_epoch: int
    ) -> tuple[int, int]:
        """Allocate a new producer id (epoch 0), or bump the epoch of the transactional id's.
        Returns (producer_id, producer_epoch). Raises ProducerFencedError. The rules are
        `producers.decide_init`."""

    # -- consumer groups ---------------------------------------------------------------------
    # The coordinator keeps live group state in memory; the store holds what must survive an
    # agent restart or a change of coordinator: committed offsets, written in one transaction
    # per OffsetCommit request, and the last completed generation of each group, written when
    # a generation completes, when a static member is replaced and when a group empties.
    # Heartbeats never touch the store. A coordinator `claim_group`s a group before it serves
    # it and writes with the epoch it got, so a coordinator that lost the group without noticing
    # (paused, partitioned) cannot write over its successor (docs/groups.md, "Fencing").
    async def claim_group(self, group_id: str) -> tuple[int, StoredGroup | None]:
        """Become the group's coordinator: bump its coordinator epoch and read its saved
        metadata, in one transaction. Returns (the new epoch, the metadata or None). Writes
        with an older epoch are refused from then on."""

    async def save_group(self, group: StoredGroup, coordinator_epoch: int | None = None) -> None:
        """Insert or replace the group's metadata (one transaction). With `coordinator_epoch`,
        only if it is still the group's epoch (else StaleCoordinatorError)."""

    async def load_group(self, group_id: str) -> StoredGroup | None:
        """The saved metadata, or None when the group was never saved (it may still have
        committed offsets)."""

    async def list_groups(self) -> list[GroupListing]:
        """Every group with metadata or committed offsets, ordered by group id."""

    async def delete_group(self, group_id: str) -> bool:
        """Drop the group's metadata and all its committed offsets in one transaction.
        Returns whether anything was there."""

    async def commit_offsets(
        self, group_id: str, offsets: list[CommittedOffset], coordinator_epoch: int | None = None
    ) -> None:
        """Upsert every offset of one OffsetCommit request in one transaction. With
        `coordinator_epoch`, only if it is still the group's epoch (else
        StaleCoordinatorError); without, unfenced (commits of groups no coordinator holds)."""

    async def fetch_offsets(
        self, group_id: str, partitions: list[tuple[str, int]] | None = None
    ) -> list[CommittedOffset]:
        """Committed offsets of the group (all when `partitions` is None), ordered by topic
        and partition; partitions without a commit are left out."""

    async def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> int:
        """OffsetDelete: drop these partitions' commits; returns how many rows went."""

    async def committed_offsets_page(self, limit: int) -> list[tuple[str, CommittedOffset]]:
        """(group id, offset) of up to `limit` commits ordered by group, topic, partition:
        the bounded input of lag metrics."""

    # -- agents (cluster membership, DESIGN.md §5) ------------------------------------------
    # Times are epoch milliseconds from the agents' wall clocks: agents on different hosts
    # compare each other's heartbeats, so clocks must agree to well within the heartbeat
    # timeout (NTP does).
    async def register_agent(
        self, info: AgentInfo, requested_node_id: int | None, stale_before_ms: int
    ) -> AgentInfo:
        """Insert (or replace) `info.agent_id`'s row in one transaction and return it with the
        node id it got: `requested_node_id` if no other live agent holds it, else the smallest
        free one (>= 0). Rows whose heartbeat is older than `stale_before_ms`, and rows that
        advertise the same host and Kafka port and started earlier (an earlier life of this
        agent, killed), are deleted first, so their node ids are free again (the rules are
        `agents.plan_registration`). `info.node_id` is ignored."""

    async def heartbeat_agent(self, agent_id: str, now_ms: int) -> bool:
        """Record a heartbeat; False when the row is gone (expired and cleaned by another
        agent): the caller registers again."""

    async def deregister_agent(self, agent_id: str) -> None:
        """Remove the row (graceful stop): peers drop the agent at their next refresh."""

    async def list_agents(self, alive_after_ms: int) -> list[AgentInfo]:
        """Agents of every agent group whose heartbeat is at or after `alive_after_ms`,
        sorted by node id."""
