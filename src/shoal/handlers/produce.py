"""Produce: validate each partition's batches, append them to the open segment, answer after
the segment file is in the object store and its batches are committed (acks 1 and -1 alike).

Batches stay bytes: only headers and CRCs are checked (DESIGN.md §2.4).

Versions served: 3-13 (the hand-written encoder's range, protocol/encoders.py).
- v3: record batches of magic 2 only (older formats are refused); transactional id.
- v5: log start offset in the answer.
- v7: zstd batches accepted.
- v8: per-batch record errors and an error message in the answer (KIP-467).
- v9: flexible (compact strings, tagged fields).
- v10-12: current leader and node endpoints may be tagged on NOT_LEADER answers (KIP-951);
  never needed, as any agent serves any partition.
- v13: topics named by id (KIP-516).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from shoal import metrics
from shoal.handlers.base import CloseConnection, RequestContext, api
from shoal.handlers.config_defaults import LONG_MAX, TOPIC_CONFIGS
from shoal.handlers.services import Services
from shoal.handlers.topic_lookup import find_topic
from shoal.meta.store import MetadataError, TopicInfo
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.batch import (
    NO_TIMESTAMP,
    BatchError,
    BatchHeader,
    split_batches,
    with_log_append_time,
)
from shoal.protocol.encoders import (
    PRODUCE_MAX_VERSION,
    PRODUCE_MIN_VERSION,
    ProducePartitionResult,
    encode_produce_response,
)
from shoal.protocol.record_filter import all_records_keyed, record_keys
from shoal.protocol.records import record_timestamps
from shoal.write.writer import AppendItem

VALID_ACKS = (-1, 0, 1)


@dataclass(slots=True)
class _Slot:
    """One partition of the request: its outcome, or the appended batches it waits for."""

    index: int
    error_code: int = errors.NONE
    first_item: int = -1
    item_count: int = 0
    base_offset: int = -1
    log_start_offset: int = -1
    log_append_time_ms: int = -1
    error_message: str | None = None
    record_errors: list[tuple[int, str | None]] = field(default_factory=list)


@dataclass(slots=True)
class _Topic:
    key: str | uuid.UUID
    slots: list[_Slot] = field(default_factory=list)


# The registry serves what the hand-written encoder encodes, so the two cannot disagree.
@api(ApiKey.PRODUCE, PRODUCE_MIN_VERSION, PRODUCE_MAX_VERSION)
async def handle_produce(svc: Services, ctx: RequestContext, req: Any) -> bytes | None:
    acks = int(req.acks)
    async with ctx.write_turn or contextlib.nullcontext():
        topics, items, record_count = await _validate(svc, req, acks)
        pending = await svc.writer.submit(items) if items else None
    if pending is not None and ctx.release_request_bytes is not None:
        # The batches are in the write buffer, whose budget counts them from here on: a
        # slow commit must not keep the server from reading other connections' requests.
        ctx.release_request_bytes()

    if pending is not None:
        outcomes = await pending
        metrics.PRODUCE_RECORDS.inc(record_count)
        metrics.PRODUCE_BYTES.inc(sum(len(i.data) for i in items))
        for topic in topics:
            for slot in topic.slots:
                if slot.item_count == 0:
                    continue
                mine = outcomes[slot.first_item : slot.first_item + slot.item_count]
                failed = next((o for o in mine if o.error_code != errors.NONE), None)
                if failed is not None:
                    slot.error_code = failed.error_code
                    slot.log_append_time_ms = -1
                    # Kafka answers a sequence or epoch refusal with the log start too.
                    slot.log_start_offset = failed.log_start_offset
                    if failed.error_code == errors.UNKNOWN_TOPIC_OR_PARTITION:
                        # Deleted (perhaps re-created) since it was looked up: the client's
                        # retry must see the topic as it is now, not as this agent cached it.
                        svc.topics.invalidate(items[slot.first_item].topic)
                else:
                    slot.base_offset = mine[0].base_offset
                    slot.log_start_offset = mine[0].log_start_offset

    if acks == 0:
        if any(s.error_code != errors.NONE for t in topics for s in t.slots):
            # The client asked for no answer, so it cannot be told: Kafka closes the
            # connection, and the client refreshes its metadata and reconnects.
            raise CloseConnection("produce_error_acks_0")
        return None
    return encode_produce_response(
        ctx.api_version,
        [
            (
                t.key,
                [
                    ProducePartitionResult(
                        index=s.index,
                        error_code=s.error_code,
                        base_offset=s.base_offset,
                        log_append_time_ms=s.log_append_time_ms,
                        log_start_offset=s.log_start_offset,
                        error_message=s.error_message,
                        record_errors=s.record_errors,
                    )
                    for s in t.slots
                ],
            )
            for t in topics
        ],
    )


async def _validate(
    svc: Services, req: Any, acks: int
) -> tuple[list[_Topic], list[AppendItem], int]:
    """Check every partition's batches; returns the answer slots and what to append."""
    topics: list[_Topic] = []
    items: list[AppendItem] = []
    record_count = 0
    now_ms = int(time.time() * 1000)
    for topic_data in req.topic_data:
        stamps: _Timestamps | None = None
        topic_id = getattr(topic_data, "topic_id", None)
        name = getattr(topic_data, "name", None)
        out = _Topic(key=topic_id if name is None and topic_id is not None else (name or ""))
        topics.append(out)
        try:
            # By name, or by id from v13. Never created here: as in Kafka, only a Metadata
            # request auto-creates, and every client sends one before producing.
            code, info = await find_topic(svc.topics, name, topic_id)
        except MetadataError:
            # The metadata store is unreachable: retriable, nothing was written.
            code, info = errors.KAFKA_STORAGE_ERROR, None
        for part in topic_data.partition_data:
            slot = _Slot(index=int(part.index))
            out.slots.append(slot)
            if acks not in VALID_ACKS:
                slot.error_code = errors.INVALID_REQUIRED_ACKS
                continue
            if info is None:
                slot.error_code = code
                continue
            if not 0 <= slot.index < info.partitions:
                slot.error_code = errors.UNKNOWN_TOPIC_OR_PARTITION
                continue
            limit = _max_message_bytes(svc, info)
            try:
                batches = split_batches(part.records or b"", limit)
            except BatchError as exc:
                slot.error_code = exc.error_code
                slot.error_message = str(exc) or None
                continue
            if any(header.is_transactional for _, header in batches):
                # No transactions yet: a read_committed consumer would see these records
                # although no transaction ever commits them.
                slot.error_code = errors.INVALID_TXN_STATE
                slot.error_message = "transactions are not supported yet"
                continue
            if "compact" in info.cleanup_policies:
                keyless = _first_keyless(batches, info.name, slot.index)
                if keyless is not None:
                    slot.error_code, slot.error_message = errors.INVALID_RECORD, keyless[1]
                    slot.record_errors = [keyless]
                    continue
            if stamps is None:
                stamps = _Timestamps.of(info)
            refused = stamps.refusal(batches, now_ms)
            if refused is not None:
                slot.error_code, slot.error_message = errors.INVALID_TIMESTAMP, refused[1]
                slot.record_errors = [refused]
                # As Kafka's answer to a record it refuses: with the partition's log start.
                with contextlib.suppress(MetadataError):  # the refusal stands without it
                    state = await svc.meta.partition_state(info.name, slot.index)
                    slot.log_start_offset = -1 if state is None else state.log_start_offset
                continue
            if stamps.log_append_time:
                batches = [with_log_append_time(data, now_ms) for data, _ in batches]
                slot.log_append_time_ms = now_ms
            slot.first_item = len(items)
            slot.item_count = len(batches)
            for data, header in batches:
                items.append(AppendItem(info.name, slot.index, data, header, info.topic_id))
                record_count += header.record_count
    return topics, items, record_count


@dataclass(frozen=True, slots=True)
class _Timestamps:
    """A topic's message.timestamp.* configs, as Kafka's LogValidator applies them. CreateTime
    timestamps are checked on the batch header alone (its first and its largest timestamp), so
    records stay undecoded: a record earlier than its batch's first is not caught."""

    log_append_time: bool
    before_max_ms: int
    after_max_ms: int

    @classmethod
    def of(cls, info: TopicInfo) -> _Timestamps:
        def config(key: str) -> str:
            return info.configs.get(key, TOPIC_CONFIGS[key].default)

        return cls(
            log_append_time=config("message.timestamp.type") == "LogAppendTime",
            before_max_ms=_int(config("message.timestamp.before.max.ms"), LONG_MAX),
            after_max_ms=_int(config("message.timestamp.after.max.ms"), LONG_MAX),
        )

    def refusal(
        self, batches: list[tuple[bytes, BatchHeader]], now_ms: int
    ) -> tuple[int, str] | None:
        """(index of the first record out of range among the partition's records, Kafka's
        message) when Kafka would refuse these batches with INVALID_TIMESTAMP, else None."""
        if self.log_append_time:
            return None  # the agent's clock stamps them
        low, high = now_ms - self.before_max_ms, now_ms + self.after_max_ms

        def bad(ts: int) -> bool:
            return ts != NO_TIMESTAMP and not low <= ts <= high

        if not any(bad(h.base_timestamp) or bad(h.max_timestamp) for _, h in batches):
            return None
        # Refused: only now are records read, to name the first one out of range as Kafka
        # does, and only in uncompressed batches (linear in the bytes received), so that no
        # client can make the produce path inflate batches; a compressed batch is named by its
        # first record. A header that lied about its timestamps is let through, as by Kafka.
        index = 0
        for data, h in batches:
            if h.compression:
                if bad(h.base_timestamp) or bad(h.max_timestamp):
                    ts = h.base_timestamp if bad(h.base_timestamp) else h.max_timestamp
                    return index, _out_of_range(ts, 0, low, high)
                index += h.record_count
                continue
            try:
                for delta, ts in record_timestamps(data):
                    if bad(ts):
                        return index, _out_of_range(ts, delta, low, high)
                    index += 1
            except BatchError as exc:
                return index, str(exc)
        return None


def _first_keyless(
    batches: list[tuple[bytes, BatchHeader]], topic: str, partition: int
) -> tuple[int, str] | None:
    """(index of the first record without a key, Kafka's message) for a compacted topic, which
    Kafka refuses with INVALID_RECORD; decompression bounded as everywhere records are read."""
    message = (
        f"Compacted topic cannot accept message without key in topic partition"
        f" {topic}-{partition}."
    )
    index = 0
    for data, header in batches:
        try:
            if not all_records_keyed(data):
                keys = record_keys(data)
                return index + next(i for i, r in enumerate(keys) if r.key is None), message
        except BatchError as exc:
            return index, str(exc)
        index += header.record_count
    return None


def _out_of_range(ts: int, offset_delta: int, low: int, high: int) -> str:
    return (
        f"Timestamp {ts} of message with offset {offset_delta} is out of range."
        f" The timestamp should be within [{low}, {high}]"
    )


def _int(value: str, default: int) -> int:
    try:
        return int(value)
    except ValueError:
        return default


def _max_message_bytes(svc: Services, info: TopicInfo) -> int:
    raw = info.configs.get("max.message.bytes")
    if raw is not None:
        try:
            return int(raw)
        except ValueError:
            pass
    return svc.settings.message_bytes_max
