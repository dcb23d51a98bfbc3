"""The record-level layer of compacted topics (cleanup.policy=compact): keys in, batches out.

Compaction keeps, for each key, only its latest record; Produce refuses keyless records in a
compacted topic (Kafka answers INVALID_RECORD). Both need to look inside batches, which the
rest of Shoal keeps as opaque bytes, so this module does it, as pure functions over one v2
batch and without I/O:

- `record_keys`: offset delta, key, tombstone flag and timestamp of every record.
- `all_records_keyed`: Produce's check, reading only each record's length and key length.
- `filter_batch`: the batch rewritten with only the kept records, the way Kafka's log cleaner
  rewrites one (`MemoryRecords.filterTo` / `buildRetainedRecordsInto`): the header fields stay
  as they were, `lastOffsetDelta` included (`overrideLastOffset`: the producer's last sequence
  and the offsets of the next cleaning pass survive a batch that loses its tail), and only
  `recordCount`, `batchLength` and the CRC change. The kept records are copied byte for byte,
  so their offset and timestamp deltas stay relative to the unchanged base offset and base
  timestamp; the payload is compressed again with the batch's codec, snappy in the framing it
  came in (xerial or raw).

Differences from Kafka, on purpose: Kafka's builder re-encodes the kept records, so under
CreateTime its baseTimestamp becomes the first kept record's and its maxTimestamp the largest
kept one; here both stay the batch's own (the records' absolute timestamps are the same either
way). Kafka 3.1+ also stamps a delete horizon (attribute bit 0x40) into batches holding
tombstones; that decision belongs to the compaction job, which this module leaves the
attributes to.

Limits: decompression stops at `limit` bytes (BatchError beyond), the kept records are at most
the decompressed bytes, and the output at most the 61-byte header plus the codec's worst case
for those (`records.compressed_bytes_max`), asserted. Malformed records are BatchError
CORRUPT_MESSAGE: a length out of range, a truncated varint, fields that do not add up to the
record's length, a record count that does not match the bytes, offset deltas that do not rise
strictly within [0, lastOffsetDelta] (offsets are what compaction decides by, so a batch whose
offsets cannot be trusted is refused rather than rewritten).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from typing import Final, NamedTuple

from crc32c import crc32c

from shoal.protocol.batch import (
    CRC_START,
    HEADER_BYTES,
    LOG_OVERHEAD,
    MAGIC_V2,
    BatchError,
    BatchHeader,
    parse_header,
)
from shoal.protocol.errors import CORRUPT_MESSAGE
from shoal.protocol.records import (
    DECOMPRESSED_BYTES_MAX,
    compress,
    compressed_bytes_max,
    decompress,
    is_xerial,
    read_varint,
    walk_records,
)

_INT32: Final = struct.Struct(">i")
_UINT32: Final = struct.Struct(">I")
_BATCH_LENGTH_AT: Final = 8
_CRC_AT: Final = 17
_RECORD_COUNT_AT: Final = 57
_SNAPPY: Final = 2


class RecordKeyInfo(NamedTuple):
    offset_delta: int
    key: bytes | None
    is_tombstone: bool  # the value is null
    timestamp_ms: int  # LogAppendTime batches: the batch's maxTimestamp, for every record


def record_keys(
    batch: bytes | memoryview, limit: int = DECOMPRESSED_BYTES_MAX
) -> list[RecordKeyInfo]:
    """Every record of one v2 batch, in order (headers and values read past, not kept)."""
    header, records = _open(batch, limit)
    log_append = header.timestamp_type == 1
    out: list[RecordKeyInfo] = []
    for _, end, ts_delta, offset_delta, key_at in _walk(header, records):
        key, is_tombstone = _key_and_tombstone(records, key_at, end)
        ts = header.max_timestamp if log_append else header.base_timestamp + ts_delta
        out.append(RecordKeyInfo(offset_delta, key, is_tombstone, ts))
    return out


def all_records_keyed(batch: bytes | memoryview, limit: int = DECOMPRESSED_BYTES_MAX) -> bool:
    """True when no record of the batch has a null key (Kafka reads any negative key length
    as null). Runs on Produce for compacted topics, so it reads as little as it can: each
    record's length, past its attributes and two varints (timestamp and offset deltas, not
    decoded), then one bit of the key length (zig-zag keeps the sign in the low bit of the
    first byte); no key copied, no value or header read, the first keyless record answers.
    BatchError when the records do not fit their lengths or the count."""
    header, records = _open(batch, limit)
    total = len(records)
    pos = 0
    for _ in range(header.record_count):
        # A length in one or two bytes (records under 8 KiB) is decoded here, others by the call.
        if pos + 1 < total and records[pos] < 0x80:
            raw = records[pos]
            length, body = (raw >> 1) ^ -(raw & 1), pos + 1
        elif pos + 1 < total and records[pos + 1] < 0x80:
            raw = (records[pos] & 0x7F) | records[pos + 1] << 7
            length, body = (raw >> 1) ^ -(raw & 1), pos + 2
        else:
            length, body = read_varint(records, pos)
        end = body + length
        if length < 0 or end > total:
            raise BatchError(CORRUPT_MESSAGE, "record length out of range")
        p = body + 1  # past the attributes byte
        while p < end and records[p] & 0x80:  # timestamp delta
            p += 1
        p += 1
        while p < end and records[p] & 0x80:  # offset delta
            p += 1
        p += 1
        if p >= end:
            raise BatchError(CORRUPT_MESSAGE, "record truncated before its key")
        if records[p] & 1:
            return False
        pos = end
    if pos != total:
        raise BatchError(CORRUPT_MESSAGE, _count_mismatch(header))
    return True


def filter_batch(
    batch: bytes | memoryview,
    keep: Callable[[int], bool] | AbstractSet[int],
    limit: int = DECOMPRESSED_BYTES_MAX,
) -> bytes | None:
    """A copy of one v2 batch holding only the records whose offset delta `keep` keeps (see
    the module docstring for what changes); None when none is kept, the input bytes when all
    are. The input's CRC is checked first: a fresh CRC must never vouch for damaged bytes.
    ValueError for a control batch (transaction markers are never filtered here)."""
    header = _header(batch)
    if header.is_control:
        raise ValueError("control batches are not filtered")
    view = memoryview(batch)
    if crc32c(view[CRC_START:]) != header.crc:
        raise BatchError(CORRUPT_MESSAGE, "record batch CRC-32C mismatch")
    records = decompress(header.compression, view[HEADER_BYTES:], limit)
    kept = keep.__contains__ if isinstance(keep, AbstractSet) else keep
    spans = []
    for start, end, _, delta, key_at in _walk(header, records):
        _key_and_tombstone(records, key_at, end)  # every record checked, kept or not
        if kept(delta):
            spans.append((start, end))
    if not spans:
        return None
    if len(spans) == header.record_count:
        return batch if type(batch) is bytes else view.tobytes()
    body = memoryview(records)
    kept_bytes = b"".join(body[start:end] for start, end in spans)
    codec = header.compression
    xerial = codec == _SNAPPY and is_xerial(view[HEADER_BYTES:])
    payload = compress(codec, kept_bytes, xerial=xerial)
    assert len(payload) <= compressed_bytes_max(codec, len(kept_bytes), xerial=xerial)
    out = bytearray(HEADER_BYTES + len(payload))
    out[:HEADER_BYTES] = view[:HEADER_BYTES]
    out[HEADER_BYTES:] = payload
    _INT32.pack_into(out, _BATCH_LENGTH_AT, len(out) - LOG_OVERHEAD)
    _INT32.pack_into(out, _RECORD_COUNT_AT, len(spans))
    _UINT32.pack_into(out, _CRC_AT, crc32c(memoryview(out)[CRC_START:]))
    return bytes(out)


def _open(batch: bytes | memoryview, limit: int) -> tuple[BatchHeader, bytes | bytearray]:
    """The header and the decompressed records of exactly one v2 batch."""
    header = _header(batch)
    return header, decompress(header.compression, memoryview(batch)[HEADER_BYTES:], limit)


def _header(batch: bytes | memoryview) -> BatchHeader:
    header = parse_header(batch)
    if header.magic != MAGIC_V2:
        raise BatchError(CORRUPT_MESSAGE, f"record batch magic {header.magic}, not 2")
    if header.size != len(batch):
        raise BatchError(
            CORRUPT_MESSAGE,
            f"record batch length {header.batch_length} does not match its {len(batch)} bytes",
        )
    if header.record_count <= 0:
        raise BatchError(CORRUPT_MESSAGE, f"record batch count {header.record_count}")
    return header


def _walk(
    header: BatchHeader, records: bytes | bytearray
) -> Iterator[tuple[int, int, int, int, int]]:
    """`walk_records` over the whole batch, checking the count against the bytes and that
    offset deltas rise strictly within [0, lastOffsetDelta]."""
    end = 0
    previous = -1
    for item in walk_records(records, header.record_count):
        end, delta = item[1], item[3]
        if not previous < delta <= header.last_offset_delta:
            raise BatchError(
                CORRUPT_MESSAGE,
                f"record offset delta {delta} after {previous} "
                f"(lastOffsetDelta {header.last_offset_delta})",
            )
        previous = delta
        yield item
    if end != len(records):
        raise BatchError(CORRUPT_MESSAGE, _count_mismatch(header))


def _count_mismatch(header: BatchHeader) -> str:
    return f"bytes left after the {header.record_count} records the batch counts"


def _key_and_tombstone(records: bytes | bytearray, pos: int, end: int) -> tuple[bytes | None, bool]:
    """The key and whether the value is null, of the record whose key length is at `pos`;
    checks that its value and headers end exactly at `end`."""
    key_length, pos = _field_end(records, pos, end)
    key = None
    if key_length >= 0:
        if pos + key_length > end:
            raise BatchError(CORRUPT_MESSAGE, "record key runs past the record length")
        key = bytes(records[pos : pos + key_length])
        pos += key_length
    value_length, pos = _field_end(records, pos, end)
    if value_length > 0:
        pos += value_length
    header_count, pos = _field_end(records, pos, end)
    if header_count < 0:
        raise BatchError(CORRUPT_MESSAGE, f"record header count {header_count}")
    for _ in range(header_count):  # each header takes 2 bytes at least: bounded by `end`
        header_key_length, pos = _field_end(records, pos, end)
        if header_key_length < 0:
            raise BatchError(CORRUPT_MESSAGE, "record header with a null key")
        header_value_length, pos = _field_end(records, pos + header_key_length, end)
        if header_value_length > 0:
            pos += header_value_length
    if pos != end:
        raise BatchError(CORRUPT_MESSAGE, "record fields do not add up to its length")
    return key, value_length < 0


def _field_end(records: bytes | bytearray, pos: int, end: int) -> tuple[int, int]:
    """The varint at `pos`, which must start inside the record ending at `end`."""
    if pos >= end:
        raise BatchError(CORRUPT_MESSAGE, "record fields run past the record length")
    return read_varint(records, pos)
