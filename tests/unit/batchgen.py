"""A tiny Kafka v2 RecordBatch encoder for tests (any module's tests may import it).

Follows the Kafka spec (https://kafka.apache.org/documentation/#recordbatch): records use zig-zag
varints; the CRC-32C covers the bytes from `attributes` to the end. `test_protocol_batch.py` checks
its output against kio's own batch writer and reader.
"""

from __future__ import annotations

import struct

import cramjam
from crc32c import crc32c

DEFAULT_TIMESTAMP_MS = 1_700_000_000_000

_POST_CRC = struct.Struct(">hiqqqhii")
_PRE_CRC = struct.Struct(">qiibI")


def zigzag_varint(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _nullable_bytes(value: bytes | None) -> bytes:
    if value is None:
        return zigzag_varint(-1)
    return zigzag_varint(len(value)) + value


def encode_record(
    offset_delta: int,
    key: bytes | None,
    value: bytes | None,
    timestamp_delta: int = 0,
    headers: list[tuple[bytes, bytes | None]] | None = None,
) -> bytes:
    body = bytearray(b"\x00")  # record attributes (unused by Kafka)
    body += zigzag_varint(timestamp_delta)
    body += zigzag_varint(offset_delta)
    body += _nullable_bytes(key)
    body += _nullable_bytes(value)
    hdrs = headers or []
    body += zigzag_varint(len(hdrs))
    for hkey, hvalue in hdrs:
        body += zigzag_varint(len(hkey)) + hkey
        body += _nullable_bytes(hvalue)
    return zigzag_varint(len(body)) + bytes(body)


def xerial_snappy(data: bytes, chunk_bytes: int = 32 * 1024) -> bytes:
    """Snappy framed as snappy-java's SnappyOutputStream frames it (Java clients, kafka-python):
    magic, version 1, compatible version 1 (big-endian), then [int32 length][raw block] chunks,
    each block compressing `chunk_bytes` of input."""
    out = bytearray(b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1))
    for pos in range(0, len(data), chunk_bytes):
        block = bytes(cramjam.snappy.compress_raw(data[pos : pos + chunk_bytes]))
        out += struct.pack(">i", len(block)) + block
    return bytes(out)


def _compress(codec: int, data: bytes, xerial_chunk_bytes: int | None = None) -> bytes:
    if codec == 0:
        return data
    if codec == 1:
        return bytes(cramjam.gzip.compress(data))
    if codec == 2:
        if xerial_chunk_bytes is not None:
            return xerial_snappy(data, xerial_chunk_bytes)
        return bytes(cramjam.snappy.compress_raw(data))
    if codec == 3:
        return bytes(cramjam.lz4.compress(data))
    if codec == 4:
        return bytes(cramjam.zstd.compress(data))
    raise ValueError(f"unknown codec {codec}")


def make_batch(
    records: list[tuple[bytes | None, bytes | None]],
    base_offset: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    timestamp_ms: int = DEFAULT_TIMESTAMP_MS,
    compression: int = 0,
    *,
    partition_leader_epoch: int = -1,
    transactional: bool = False,
    control: bool = False,
    headers: list[tuple[bytes, bytes | None]] | None = None,
    timestamp_step_ms: int = 0,
    record_headers: list[list[tuple[bytes, bytes | None]]] | None = None,
    xerial_chunk_bytes: int | None = None,
) -> bytes:
    """Encode `records` ((key, value) pairs) as one v2 batch; record i gets the timestamp
    `timestamp_ms + i * timestamp_step_ms` (all the same by default).

    `compression` is Kafka's codec id (0 none, 1 gzip, 2 snappy (raw, as librdkafka sends, or
    xerial-framed in chunks of `xerial_chunk_bytes` when given, as Java clients send), 3 lz4
    frame, 4 zstd); `headers` are attached to every record, or `record_headers[i]` to record i.
    """
    if not records:
        raise ValueError("a batch needs at least one record")
    if record_headers is not None and len(record_headers) != len(records):
        raise ValueError("record_headers needs one list per record")
    body = b"".join(
        encode_record(
            i,
            key,
            value,
            i * timestamp_step_ms,
            headers if record_headers is None else record_headers[i],
        )
        for i, (key, value) in enumerate(records)
    )
    attributes = compression & 0x07
    if transactional:
        attributes |= 0x10
    if control:
        attributes |= 0x20
    post_crc = _POST_CRC.pack(
        attributes,
        len(records) - 1,
        timestamp_ms,
        timestamp_ms + max(0, (len(records) - 1) * timestamp_step_ms),
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    ) + _compress(compression, body, xerial_chunk_bytes)
    batch_length = len(post_crc) + 9  # partitionLeaderEpoch + magic + crc
    pre_crc = _PRE_CRC.pack(base_offset, batch_length, partition_leader_epoch, 2, crc32c(post_crc))
    return pre_crc + post_crc


def recrc(batch: bytes | bytearray) -> bytes:
    """Recompute the CRC of a (deliberately altered) batch so only the alteration is wrong."""
    buf = bytearray(batch)
    struct.pack_into(">I", buf, 17, crc32c(bytes(buf[21:])))
    return bytes(buf)


def batch_of_payload(
    payload: bytes,
    compression: int,
    record_count: int,
    timestamp_ms: int = DEFAULT_TIMESTAMP_MS,
    max_timestamp_ms: int | None = None,
) -> bytes:
    """A v2 batch around an already compressed records payload (hostile-input tests)."""
    post_crc = (
        _POST_CRC.pack(
            compression & 0x07,
            record_count - 1,
            timestamp_ms,
            timestamp_ms if max_timestamp_ms is None else max_timestamp_ms,
            -1,
            -1,
            -1,
            record_count,
        )
        + payload
    )
    pre_crc = _PRE_CRC.pack(0, len(post_crc) + 9, -1, 2, crc32c(post_crc))
    return pre_crc + post_crc


def zstd_bomb(value_bytes: int, chunk_bytes: int = 16 * 1024 * 1024) -> bytes:
    """The zstd-compressed records of one record whose value is `value_bytes` zero bytes,
    built chunk by chunk so the test itself never holds the decompressed size."""
    value_len = zigzag_varint(value_bytes)
    # attributes, timestamp delta 0, offset delta 0, null key, value length ... value, 0 headers
    head = b"\x00" + zigzag_varint(0) + zigzag_varint(0) + zigzag_varint(-1) + value_len
    body_len = len(head) + value_bytes + 1
    compressor = cramjam.zstd.Compressor(level=3)
    compressor.compress(zigzag_varint(body_len) + head)
    zeros = bytes(chunk_bytes)
    left = value_bytes
    while left > 0:
        n = min(left, chunk_bytes)
        compressor.compress(zeros if n == chunk_bytes else zeros[:n])
        left -= n
    compressor.compress(zigzag_varint(0))
    return bytes(compressor.finish())
