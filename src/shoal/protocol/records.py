"""Reading records inside a v2 batch, for the few callers that must look past the header.

ListOffsets by timestamp answers with the exact record (as Kafka does), which needs each
record's timestamp and offset delta; compaction (`record_filter`) needs keys and re-compresses
what it keeps. Produce and Fetch leave batches as bytes: only Produce's timestamp checks and its
key check for compacted topics read records, through this module.
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
# What snappy-java's SnappyOutputStream writes: magic, version 1, minimum compatible version 1.
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_CHUNK_BYTES = 32 * 1024  # snappy-java's default block size
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


def is_xerial(payload: bytes | bytearray | memoryview) -> bool:
    """Whether a snappy payload is xerial-framed (as Java clients send) rather than raw."""
    return bytes(payload[: len(_XERIAL_MAGIC)]) == _XERIAL_MAGIC


def compress(codec: int, data: bytes | bytearray | memoryview, *, xerial: bool = False) -> bytes:
    """`data` compressed with Kafka codec `codec`, in the framing every Kafka reader accepts:
    gzip; snappy raw, or xerial-framed when `xerial` (32 KiB chunks, as snappy-java writes);
    the LZ4 frame format with independent 64 KiB blocks (Kafka's Lz4BlockInputStream refuses
    dependent ones); a zstd frame. The result is
    never longer than `compressed_bytes_max(codec, len(data))`."""
    if codec == 0:
        return bytes(data)
    if codec == 2:
        if not xerial:
            return bytes(cramjam.snappy.compress_raw(data))
        view = memoryview(data)
        parts = [_XERIAL_HEADER]
        for pos in range(0, len(view), _XERIAL_CHUNK_BYTES):
            block = bytes(cramjam.snappy.compress_raw(view[pos : pos + _XERIAL_CHUNK_BYTES]))
            parts += (struct.pack(">i", len(block)), block)
        return b"".join(parts)
    if codec == 3:
        # cramjam.lz4.compress links each block to the previous one (FLG 0x54), which Kafka's
        # Java reader refuses; its streaming compressor can write them independent (FLG 0x74:
        # independent blocks, block and content checksums, which Kafka's reader verifies).
        compressor = cramjam.lz4.Compressor(block_linked=False)
        compressor.compress(data)
        return bytes(compressor.finish())
    module = _CODECS.get(codec)
    if module is None:
        raise ValueError(f"unknown compression codec {codec}")
    return bytes(module.compress(data))


def compressed_bytes_max(codec: int, size: int, *, xerial: bool = False) -> int:
    """The most bytes `compress(codec, <size bytes>)` can produce: each codec's documented
    worst case (zlib's deflateBound plus the gzip wrapper, snappy's MaxCompressedLength per
    block, LZ4F's bound for 64 KiB blocks stored raw when incompressible, each with its
    checksum, ZSTD_COMPRESSBOUND), rounded up."""
    if codec == 0:
        return size
    if codec == 1:
        return size + (size >> 3) + (size >> 6) + 64
    if codec == 2:
        if not xerial:
            return 32 + size + size // 6
        chunks = -(-size // _XERIAL_CHUNK_BYTES)
        return _XERIAL_HEADER_BYTES + chunks * 36 + size + size // 6
    if codec == 3:
        return size + (size >> 7) + 64
    if codec == 4:
        return size + (size >> 8) + 128
    raise ValueError(f"unknown compression codec {codec}")


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


def read_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
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


def walk_records(
    records: bytes | bytearray, count: int
) -> Iterator[tuple[int, int, int, int, int]]:
    """(start, end, timestamp_delta, offset_delta, key_at) of each of the first `count` records
    in a batch's (decompressed) records bytes: `records[start:end]` is the whole record, its
    length varint included; `key_at` is where its key length starts. What follows the last
    record is the caller's to check (BatchError when a record runs past its own length or
    past the bytes)."""
    pos = 0
    total = len(records)
    for _ in range(count):
        start = pos
        length, pos = read_varint(records, pos)
        end = pos + length
        if length < 0 or end > total:
            raise BatchError(CORRUPT_MESSAGE, "record length out of range")
        ts_delta, p = read_varint(records, pos + 1)  # after the attributes byte
        offset_delta, p = read_varint(records, p)
        if p > end:
            raise BatchError(CORRUPT_MESSAGE, "record fields run past the record length")
        yield start, end, ts_delta, offset_delta, p
        pos = end


def record_timestamps(batch: bytes | memoryview) -> Iterator[tuple[int, int]]:
    """(offset_delta, timestamp_ms) of each record of one batch, in order.

    With LogAppendTime (timestamp type 1) every record carries the batch's max timestamp.
    """
    header = parse_header(batch)
    log_append = header.timestamp_type == 1
    records = decompress(header.compression, memoryview(batch)[HEADER_BYTES : header.size])
    for _, _, ts_delta, offset_delta, _ in walk_records(records, header.record_count):
        yield offset_delta, header.max_timestamp if log_append else header.base_timestamp + ts_delta


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
