"""Kafka v2 RecordBatch validation without decoding records.

Batches stay the bytes the client sent (DESIGN §2.4): Produce checks the 61-byte header and the
CRC-32C and never looks inside the (maybe compressed) records. At read time only the first 8 bytes
(`baseOffset`) change; the CRC covers the bytes from `attributes` on, so patching needs no CRC work.

Error codes follow what Kafka's broker answers (LogValidator, DefaultRecordBatch.ensureValid,
ProduceRequest.validateRecords):
- CRC mismatch, or a batch length below the header size: CORRUPT_MESSAGE (2), as Kafka's
  `CorruptRecordException`. Clients retry it, which is right for bytes damaged in transit.
- magic != 2: INVALID_RECORD (87). Kafka rejects produce v3+ holding magic 0/1 batches with
  `InvalidRecordException` ("...only allowed to contain record batches with magic version 2"),
  which maps to 87 and not to UNSUPPORTED_FOR_MESSAGE_FORMAT (43; that one is for topics pinned to
  an old message format, which Shoal has not).
- Other malformed batches (count <= 0, lastOffsetDelta != count-1, unknown codec 5-7, control
  batch from a client, producer id without sequence, truncated data, empty records): INVALID_RECORD
  (87), not retriable, because resending the same bytes cannot help.
- One batch larger than `max_batch_bytes`: MESSAGE_TOO_LARGE (10), as Kafka's
  `RecordTooLargeException` for `max.message.bytes`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from crc32c import crc32c

from shoal.protocol import errors

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, recordCount
_HEADER: Final = struct.Struct(">qiibIhiqqqhii")
HEADER_BYTES: Final = _HEADER.size  # 61
# Bytes before `batchLength`'s coverage starts: baseOffset (8) + batchLength (4).
LOG_OVERHEAD: Final = 12
CRC_START: Final = 21  # offset of `attributes`, where the CRC coverage begins
MAGIC_V2: Final = 2
NO_TIMESTAMP: Final = -1

_COMPRESSION_MASK: Final = 0x07
_TIMESTAMP_TYPE_BIT: Final = 0x08
_TRANSACTIONAL_BIT: Final = 0x10
_CONTROL_BIT: Final = 0x20
_MAX_CODEC: Final = 4  # 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
_BASE_OFFSET: Final = struct.Struct(">q")

assert HEADER_BYTES == 61


class BatchError(errors.ApiError):
    """A record batch that must be refused, with the Kafka error code to answer."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(error_code, message)
        self.error_code = error_code


@dataclass(frozen=True, slots=True)
class BatchHeader:
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def compression(self) -> int:
        return self.attributes & _COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        """0 = CreateTime, 1 = LogAppendTime."""
        return 1 if self.attributes & _TIMESTAMP_TYPE_BIT else 0

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _CONTROL_BIT)

    @property
    def size(self) -> int:
        """Bytes of the whole batch, including baseOffset and batchLength."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta


def parse_header(data: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Read the header at `pos` without any check beyond there being 61 bytes."""
    if len(data) - pos < HEADER_BYTES:
        raise BatchError(errors.INVALID_RECORD, "record batch header truncated")
    return BatchHeader(*_HEADER.unpack_from(data, pos))


def split_batches(
    records: bytes | bytearray | memoryview | None,
    max_batch_bytes: int,
    *,
    allow_control: bool = False,
) -> list[tuple[bytes, BatchHeader]]:
    """Validate every batch in a Produce partition's `records` field and return them one by one.

    When `records` is a single batch held in `bytes` (the usual case) it is returned as is, with
    no copy. `allow_control` admits control batches, which only the agent itself may write
    (transaction markers); Kafka refuses them from clients.
    """
    if not records:
        raise BatchError(errors.INVALID_RECORD, "produce request without records")
    view = memoryview(records)
    total = len(view)
    unpack_from = _HEADER.unpack_from
    out: list[tuple[bytes, BatchHeader]] = []
    pos = 0
    while pos < total:
        if total - pos < HEADER_BYTES:
            raise BatchError(
                errors.INVALID_RECORD,
                f"record batch truncated: {total - pos} bytes left, header needs {HEADER_BYTES}",
            )
        fields = unpack_from(view, pos)
        batch_length = fields[1]
        size = batch_length + LOG_OVERHEAD
        # Magic sits at offset 16 in every message format, so it can be checked first.
        if fields[3] != MAGIC_V2:
            raise BatchError(
                errors.INVALID_RECORD, f"record batch magic {fields[3]} (only v2 is accepted)"
            )
        if size < HEADER_BYTES:
            raise BatchError(
                errors.CORRUPT_MESSAGE, f"record batch length {batch_length} too small"
            )
        if size > max_batch_bytes:
            raise BatchError(
                errors.MESSAGE_TOO_LARGE,
                f"record batch of {size} bytes exceeds the limit of {max_batch_bytes}",
            )
        end = pos + size
        if end > total:
            raise BatchError(
                errors.INVALID_RECORD,
                f"record batch truncated: needs {size} bytes, {total - pos} left",
            )
        if crc32c(view[pos + CRC_START : end]) != fields[4]:
            raise BatchError(errors.CORRUPT_MESSAGE, "record batch CRC-32C mismatch")
        header = BatchHeader(*fields)
        count = fields[12]
        # One cheap test on the tuple for the common good batch; details only when it fails.
        # (attributes & 0x27 > 4: a codec above zstd, or the control bit.)
        if (
            count <= 0
            or fields[6] != count - 1
            or fields[5] & 0x27 > 4
            or fields[9] >= 0 > fields[11]
        ):
            _check_fields(header, allow_control)
        if pos == 0 and end == total and type(records) is bytes:
            out.append((records, header))
        else:
            out.append((view[pos:end].tobytes(), header))
        pos = end
    return out


def _check_fields(h: BatchHeader, allow_control: bool) -> None:
    if h.record_count <= 0:
        raise BatchError(errors.INVALID_RECORD, f"record batch count {h.record_count}")
    if h.last_offset_delta != h.record_count - 1:
        raise BatchError(
            errors.INVALID_RECORD,
            f"lastOffsetDelta {h.last_offset_delta} does not match record count {h.record_count}",
        )
    if h.attributes & _COMPRESSION_MASK > _MAX_CODEC:
        raise BatchError(
            errors.INVALID_RECORD, f"unknown compression codec {h.attributes & _COMPRESSION_MASK}"
        )
    if h.attributes & _CONTROL_BIT:
        if not allow_control:
            raise BatchError(errors.INVALID_RECORD, "clients may not write control batches")
        return  # transaction markers carry a producer id but no sequence
    if h.producer_id >= 0 and h.base_sequence < 0:
        raise BatchError(
            errors.INVALID_RECORD, f"producer id {h.producer_id} without a base sequence"
        )


_ATTRIBUTES: Final = struct.Struct(">h")
_ATTRIBUTES_AT: Final = CRC_START
_MAX_TIMESTAMP_AT: Final = 35
_TIMESTAMP: Final = struct.Struct(">q")
_CRC: Final = struct.Struct(">I")
_CRC_AT: Final = 17


def with_log_append_time(batch: bytes, now_ms: int) -> tuple[bytes, BatchHeader]:
    """A copy of `batch` stamped as Kafka stamps a batch for a LogAppendTime topic: the
    timestamp-type bit set, maxTimestamp the append time, the CRC computed again (it covers
    both). The records keep their own timestamps; consumers read maxTimestamp for every record
    of such a batch. One copy and one CRC pass over the batch."""
    out = bytearray(batch)
    attributes = _ATTRIBUTES.unpack_from(out, _ATTRIBUTES_AT)[0] | _TIMESTAMP_TYPE_BIT
    _ATTRIBUTES.pack_into(out, _ATTRIBUTES_AT, attributes)
    _TIMESTAMP.pack_into(out, _MAX_TIMESTAMP_AT, now_ms)
    _CRC.pack_into(out, _CRC_AT, crc32c(memoryview(out)[CRC_START:]))
    data = bytes(out)
    return data, parse_header(data)


def patch_base_offset(batch: bytes | bytearray | memoryview, base_offset: int) -> bytes:
    """A copy of `batch` with its baseOffset set; one copy of the bytes, no CRC work."""
    return b"".join((_BASE_OFFSET.pack(base_offset), memoryview(batch)[8:]))


def patch_base_offset_into(buf: bytearray, pos: int, base_offset: int) -> None:
    """Set the baseOffset of the batch starting at `buf[pos]` in place."""
    _BASE_OFFSET.pack_into(buf, pos, base_offset)
