"""Reading records inside a v2 batch: only for work off the produce/fetch paths.

ListOffsets by timestamp answers with the exact record (as Kafka does), which needs each
record's timestamp and offset delta. Compaction will need keys. Produce and Fetch never call
this module: there, batches stay bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import cramjam

from shoal.protocol.batch import HEADER_BYTES, BatchError, parse_header
from shoal.protocol.errors import CORRUPT_MESSAGE

# Java clients and kafka-python frame snappy like snappy-java: magic, version, compat, then
# [4-byte length][raw snappy block] chunks. librdkafka sends raw snappy.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_BYTES = 16
# A compressed batch may not expand past this (bounds memory on hostile input: a 65 KB zstd
# frame can claim gigabytes). Checked while decompressing, never after.
DECOMPRESSED_BYTES_MAX = 64 * 1024 * 1024
# First output buffer, then x4 per retry up to the limit: a typical batch decompresses in one
# try, a bomb costs at most 4/3 of the limit in work and the limit in memory.
_FIRST_GUESS_BYTES = 1024 * 1024
_GROWTH = 4

_CODECS = {1: cramjam.gzip, 3: cramjam.lz4, 4: cramjam.zstd}


def decompress(
    codec: int, payload: bytes | memoryview, limit: int = DECOMPRESSED_BYTES_MAX
) -> bytes | bytearray:
    """The records bytes of a batch payload, for codecs 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd,
    never holding more than `limit` bytes of output (BatchError when it would need more)."""
    if codec == 0:
        return bytes(payload)
    if codec == 2:
        return _snappy(bytes(payload), limit)
    module = _CODECS.get(codec)
    if module is None:
        raise BatchError(CORRUPT_MESSAGE, f"unknown compression codec {codec}")
    size = min(limit, max(_FIRST_GUESS_BYTES, len(payload) * _GROWTH))
    while True:
        out = bytearray(size)
        try:
            written = module.decompress_into(payload, out)
        except cramjam.DecompressionError as exc:
            # cramjam stops when the buffer is full ("failed to write whole buffer"), so a
            # too-small buffer and a corrupt payload look alike: grow until the limit.
            if size >= limit:
                raise BatchError(
                    CORRUPT_MESSAGE, f"cannot decompress within {limit} bytes: {exc}"
                ) from None
            size = min(limit, size * _GROWTH)
            continue
        del out[written:]
        return out


def _snappy(data: bytes, limit: int) -> bytes | bytearray:
    if not data.startswith(_XERIAL_MAGIC):
        return _snappy_block(data, limit)
    out = bytearray()
    pos = _XERIAL_HEADER_BYTES
    while pos < len(data):
        if pos + 4 > len(data):
            raise BatchError(CORRUPT_MESSAGE, "truncated xerial snappy chunk header")
        (size,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if size < 0 or pos + size > len(data):
            raise BatchError(CORRUPT_MESSAGE, "xerial snappy chunk out of range")
        out += _snappy_block(data[pos : pos + size], limit - len(out))
        pos += size
    return out


def _snappy_block(block: bytes, limit: int) -> bytes:
    """One raw snappy block; its preamble states the decompressed length, checked first."""
    shift = length = pos = 0
    while True:
        if pos >= len(block) or shift > 28:
            raise BatchError(CORRUPT_MESSAGE, "bad snappy preamble")
        b = block[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    if length > limit:
        raise BatchError(CORRUPT_MESSAGE, f"snappy block of {length} bytes exceeds {limit}")
    try:
        return bytes(cramjam.snappy.decompress_raw(block))
    except cramjam.DecompressionError as exc:
        raise BatchError(CORRUPT_MESSAGE, f"cannot decompress: {exc}") from None


def _varint(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    """Zig-zag varint (Kafka's signed varint/varlong) at pos: (value, next position)."""
    shift = 0
    raw = 0
    while True:
        if pos >= len(buf):
            raise BatchError(CORRUPT_MESSAGE, "truncated varint")
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise BatchError(CORRUPT_MESSAGE, "varint too long")
    return (raw >> 1) ^ -(raw & 1), pos


def record_timestamps(batch: bytes | memoryview) -> Iterator[tuple[int, int]]:
    """(offset_delta, timestamp_ms) of each record of one batch, in order.

    With LogAppendTime (timestamp type 1) every record carries the batch's max timestamp.
    """
    header = parse_header(batch)
    log_append = header.timestamp_type == 1
    records = decompress(header.compression, memoryview(batch)[HEADER_BYTES : header.size])
    pos = 0
    for _ in range(header.record_count):
        length, pos = _varint(records, pos)
        end = pos + length
        if length < 0 or end > len(records):
            raise BatchError(CORRUPT_MESSAGE, "record length out of range")
        p = pos + 1  # attributes
        ts_delta, p = _varint(records, p)
        offset_delta, p = _varint(records, p)
        yield offset_delta, header.max_timestamp if log_append else header.base_timestamp + ts_delta
        pos = end


def first_at_or_after(batch: bytes | memoryview, timestamp: int) -> tuple[int, int] | None:
    """(offset_delta, timestamp) of the first record whose timestamp reaches `timestamp`."""
    for delta, ts in record_timestamps(batch):
        if ts >= timestamp:
            return delta, ts
    return None


def max_timestamp_record(batch: bytes | memoryview) -> tuple[int, int] | None:
    """(offset_delta, timestamp) of the first record holding the batch's largest timestamp."""
    best: tuple[int, int] | None = None
    for delta, ts in record_timestamps(batch):
        if best is None or ts > best[1]:
            best = (delta, ts)
    return best
