"""record_filter: keys out of batches and batches rewritten for compaction, checked against
decoders that share nothing with it: kio (header, CRC, records of an uncompressed batch),
kafka-python's DefaultRecordBatch and codecs (compressed batches: python gzip, python-snappy,
python-lz4, zstandard), and a reader of LZ4 frames written the way Kafka's Java one reads them.
"""

from __future__ import annotations

import os
import struct
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import lz4.block  # type: ignore[import-untyped]
import pytest
from crc32c import crc32c
from kafka.codec import (  # type: ignore[import-untyped]
    gzip_decode,
    lz4_decode,
    snappy_decode,
    zstd_decode,
)
from kafka.record.default_records import DefaultRecordBatch  # type: ignore[import-untyped]
from kio.records.readers import read_batch
from kio.records.schema import RecordBatch

from shoal.protocol import errors
from shoal.protocol.batch import BatchError, parse_header, split_batches, with_log_append_time
from shoal.protocol.record_filter import (
    RecordKeyInfo,
    all_records_keyed,
    filter_batch,
    record_keys,
)
from shoal.protocol.records import compress, compressed_bytes_max, record_timestamps
from tests.unit.batchgen import (
    batch_of_payload,
    encode_record,
    make_batch,
    recrc,
    zigzag_varint,
    zstd_bomb,
)

BASE_OFFSET = 1_000
TS = 1_700_000_000_000
XERIAL_MAGIC = b"\x82SNAPPY\x00"

# (codec, xerial chunk bytes): raw snappy as librdkafka sends it, xerial as Java clients do
# (small chunks here, so a batch spans several).
CODECS = [(0, None), (1, None), (2, None), (2, 1000), (3, None), (4, None)]
CODEC_IDS = ["none", "gzip", "snappy-raw", "snappy-xerial", "lz4", "zstd"]

_rng = os.urandom  # incompressible values exercise each codec's worst-case bound


def _pairs(n: int = 40) -> list[tuple[bytes | None, bytes | None]]:
    """Distinct keys; every 5th record a tombstone; values of mixed sizes, some random."""
    out: list[tuple[bytes | None, bytes | None]] = []
    for i in range(n):
        value: bytes | None
        if i % 5 == 3:
            value = None
        elif i % 3 == 0:
            value = _rng(i * 37 % 300)
        else:
            value = f"value-{i}-".encode() * (i % 7)
        out.append((f"key-{i}".encode(), value))
    return out


def _headers(n: int) -> list[list[tuple[bytes, bytes | None]]]:
    """Per-record headers: none, one, or several, with a null value and an empty one."""
    return [
        [(f"h{j}".encode(), None if j == 1 else b"x" * (i + j)) for j in range(i % 4)]
        for i in range(n)
    ]


def _batch(
    codec: int,
    xerial: int | None,
    pairs: Sequence[tuple[bytes | None, bytes | None]],
    **kw: Any,
) -> bytes:
    return make_batch(
        list(pairs),
        base_offset=BASE_OFFSET,
        producer_id=77,
        producer_epoch=3,
        base_sequence=500,
        timestamp_ms=TS,
        compression=codec,
        partition_leader_epoch=9,
        timestamp_step_ms=2,
        record_headers=_headers(len(pairs)),
        xerial_chunk_bytes=xerial,
        **kw,
    )


def _decompress_independently(codec: int, payload: bytes) -> bytes:
    if codec == 0:
        return payload
    decoder: Callable[[bytes], bytes] = {
        1: gzip_decode,
        2: snappy_decode,
        3: lz4_decode,
        4: zstd_decode,
    }[codec]
    return bytes(decoder(payload))


def _kio(batch: bytes) -> RecordBatch:
    """kio's decoding of `batch`; a compressed batch is first rebuilt uncompressed (payload
    decompressed by kafka-python's codecs, codec bits cleared, CRC recomputed), after its own
    CRC is checked."""
    header = parse_header(batch)
    assert header.size == len(batch)
    assert crc32c(batch[21:]) == header.crc
    if header.compression:
        records = _decompress_independently(header.compression, batch[61:])
        head = bytearray(batch[:61])
        struct.pack_into(">h", head, 21, header.attributes & ~0x07)
        struct.pack_into(">i", head, 8, 49 + len(records))
        batch = recrc(bytes(head) + records)
    decoded, size = read_batch(batch, 0)  # kio checks the CRC and each record's length
    assert size == len(batch)
    return decoded


def _kafka_python(batch: bytes) -> list[tuple[int, bytes | None, bytes | None, int]]:
    """kafka-python's reading of `batch` (its own decompression): (offset, key, value,
    timestamp in ms)."""
    decoded = DefaultRecordBatch(bytearray(batch))
    assert decoded.validate_crc()
    return [(r.offset, r.key, r.value, r.timestamp) for r in decoded]


# --- record_keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "xerial"), CODECS, ids=CODEC_IDS)
def test_record_keys_reads_keys_tombstones_and_timestamps(codec: int, xerial: int | None) -> None:
    pairs = _pairs()
    pairs[7] = (None, b"keyless")
    pairs[8] = (b"", b"empty key")
    batch = _batch(codec, xerial, pairs)
    got = record_keys(batch)
    assert got == [
        RecordKeyInfo(i, key, value is None, TS + 2 * i) for i, (key, value) in enumerate(pairs)
    ]
    assert sum(info.is_tombstone for info in got) == 7  # i % 5 == 3, but for record 8
    # Same offsets and timestamps as the existing reader, over the same walk.
    assert [(i.offset_delta, i.timestamp_ms) for i in got] == list(record_timestamps(batch))


def test_record_keys_with_log_append_time_give_the_batch_max_timestamp() -> None:
    batch, _ = with_log_append_time(_batch(4, None, _pairs(5)), TS + 99_999)
    assert [info.timestamp_ms for info in record_keys(batch)] == [TS + 99_999] * 5


def test_a_negative_key_length_other_than_minus_one_is_a_null_key() -> None:
    # Kafka (DefaultRecord.readFrom) reads any negative key length as null, and a varint may
    # be written in more bytes than it needs: 0x81 0x00 is -1 too. Both must count as keyless.
    def record(delta: int, key_length: bytes) -> bytes:
        body = b"\x00" + zigzag_varint(0) + zigzag_varint(delta) + key_length
        body += zigzag_varint(1) + b"v" + zigzag_varint(0)
        return zigzag_varint(len(body)) + body

    for key_length in (zigzag_varint(-2), b"\x81\x00"):
        payload = encode_record(0, b"k", b"v") + record(1, key_length)
        batch = batch_of_payload(payload, 0, 2)
        # kafka-python reads them as Kafka does (kio refuses -2 outright).
        assert [key for _, key, _, _ in _kafka_python(batch)] == [b"k", None]
        assert [info.key for info in record_keys(batch)] == [b"k", None]
        assert all_records_keyed(batch) is False


# --- all_records_keyed ---------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "xerial"), CODECS, ids=CODEC_IDS)
def test_all_records_keyed(codec: int, xerial: int | None) -> None:
    pairs = _pairs(30)
    assert all_records_keyed(_batch(codec, xerial, pairs)) is True
    pairs[0] = (b"", pairs[0][1])  # an empty key is a key
    assert all_records_keyed(_batch(codec, xerial, pairs)) is True
    for where in (0, 17, 29):
        keyless = list(pairs)
        keyless[where] = (None, b"v")
        assert all_records_keyed(_batch(codec, xerial, keyless)) is False
    assert all_records_keyed(_batch(codec, xerial, [(None, None)])) is False
    # Records past 8 KiB have 3-byte lengths, read by the general varint path.
    big = [*pairs, (b"big", _rng(10_000)), (b"after", b"v")]
    assert all_records_keyed(_batch(codec, xerial, big)) is True
    big[-1] = (None, b"v")
    assert all_records_keyed(_batch(codec, xerial, big)) is False


# --- filter_batch --------------------------------------------------------------------------


def _keep_pattern(n: int) -> set[int]:
    """First, last and a scattering in between, with runs and gaps."""
    return {0, 1, 2, 6, 11, 12, 20, n - 3} & set(range(n - 1))


@pytest.mark.parametrize(("codec", "xerial"), CODECS, ids=CODEC_IDS)
def test_filter_keeps_the_chosen_records_as_kafka_rewrites_a_batch(
    codec: int, xerial: int | None
) -> None:
    pairs = _pairs()
    headers = _headers(len(pairs))
    batch = _batch(codec, xerial, pairs, transactional=True)
    keep = _keep_pattern(len(pairs))
    out = filter_batch(batch, keep)
    assert out is not None

    before, after = parse_header(batch), parse_header(out)
    assert after.record_count == len(keep)
    assert after.last_offset_delta == len(pairs) - 1  # unchanged: sequences survive
    assert after.batch_length == len(out) - 12
    for field in (
        "base_offset",
        "partition_leader_epoch",
        "magic",
        "attributes",
        "base_timestamp",
        "max_timestamp",
        "producer_id",
        "producer_epoch",
        "base_sequence",
    ):
        assert getattr(after, field) == getattr(before, field), field
    assert after.is_transactional and after.compression == codec

    # kio: offsets are the base plus the original deltas; keys, values, headers unchanged.
    decoded = _kio(out)
    assert decoded.last_offset_delta == len(pairs) - 1
    kept = sorted(keep)
    assert [r.offset for r in decoded.records] == [BASE_OFFSET + d for d in kept]
    assert [(r.key, r.value) for r in decoded.records] == [pairs[d] for d in kept]
    assert [[(h.key, h.value) for h in r.headers] for r in decoded.records] == [
        headers[d] for d in kept
    ]
    # kafka-python, with its own decompression, reads the compressed batch as it is (and
    # gives timestamps to the millisecond, which kio rounds to the second).
    assert _kafka_python(out) == [(BASE_OFFSET + d, *pairs[d], TS + 2 * d) for d in kept]
    # The kept records are the original records' bytes, in order.
    records = _decompress_independently(codec, out[61:])
    assert records == b"".join(
        encode_record(d, *pairs[d], timestamp_delta=2 * d, headers=headers[d]) for d in kept
    )
    # And filtering reads back through our own reader too.
    assert [info.offset_delta for info in record_keys(out)] == kept


@pytest.mark.parametrize(("codec", "xerial"), CODECS, ids=CODEC_IDS)
def test_filter_takes_a_predicate_and_can_be_applied_again(codec: int, xerial: int | None) -> None:
    pairs = _pairs(25)
    once = filter_batch(_batch(codec, xerial, pairs), lambda delta: delta % 3 != 1)
    assert once is not None
    twice = filter_batch(once, frozenset({0, 9, 24}))
    assert twice is not None
    assert [r.offset for r in _kio(twice).records] == [BASE_OFFSET + d for d in (0, 9, 24)]
    assert parse_header(twice).last_offset_delta == 24
    # Keeping all of an already-filtered batch hands it back as it is.
    assert filter_batch(twice, {0, 9, 24}) is twice


def test_the_crc_is_the_one_produce_validation_checks() -> None:
    out = filter_batch(_batch(1, None, _pairs(10)), {0, 5})
    assert out is not None
    assert DefaultRecordBatch(bytearray(out)).validate_crc()
    # Produce's validator gets past the CRC and refuses only the gap a compacted batch has
    # (lastOffsetDelta 9 with 2 records), which a client may not send but the cleaner writes.
    with pytest.raises(BatchError, match="lastOffsetDelta 9 does not match record count 2"):
        split_batches(out, 1 << 20)
    damaged = bytearray(out)
    damaged[-1] ^= 1
    with pytest.raises(BatchError, match="CRC"):
        split_batches(bytes(damaged), 1 << 20)
    # A batch that keeps its last record passes it whole.
    full = filter_batch(_batch(1, None, _pairs(10)), {0, 9})
    assert full is not None
    assert parse_header(full).record_count == 2
    with pytest.raises(BatchError, match="lastOffsetDelta"):
        split_batches(full, 1 << 20)


@pytest.mark.parametrize(("codec", "xerial"), CODECS, ids=CODEC_IDS)
def test_keeping_everything_returns_the_same_bytes(codec: int, xerial: int | None) -> None:
    batch = _batch(codec, xerial, _pairs(12))
    assert filter_batch(batch, set(range(12))) is batch
    assert filter_batch(batch, lambda _: True) is batch
    from_view = filter_batch(memoryview(batch), set(range(100)))
    assert type(from_view) is bytes and from_view == batch


@pytest.mark.parametrize(("codec", "xerial"), CODECS, ids=CODEC_IDS)
def test_keeping_nothing_returns_none(codec: int, xerial: int | None) -> None:
    batch = _batch(codec, xerial, _pairs(12))
    assert filter_batch(batch, set()) is None
    assert filter_batch(batch, {12, 13, -1}) is None  # deltas the batch does not hold
    assert filter_batch(batch, lambda _: False) is None


def test_control_batches_are_refused() -> None:
    marker = make_batch([(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00")], control=True)
    with pytest.raises(ValueError, match="control"):
        filter_batch(marker, {0})


def test_snappy_keeps_the_framing_it_came_in() -> None:
    pairs = _pairs(60)
    raw = filter_batch(_batch(2, None, pairs), {0, 30, 59})
    assert raw is not None and not raw[61:].startswith(XERIAL_MAGIC)
    # Java clients read raw too (snappy-java's SnappyInputStream falls back to
    # Snappy.uncompress without the magic), but xerial input stays xerial.
    keep = set(range(0, 60, 2))
    xerial = filter_batch(_batch(2, 1000, pairs), keep)
    assert xerial is not None
    payload = xerial[61:]
    assert payload[:16] == XERIAL_MAGIC + struct.pack(">ii", 1, 1)
    # [int32 length][raw block] chunks to the end, each decompressing to at most 32 KiB.
    pos, chunks, total = 16, 0, b""
    while pos < len(payload):
        (size,) = struct.unpack_from(">i", payload, pos)
        block = snappy_decode(payload[pos + 4 : pos + 4 + size])  # a raw block on its own
        assert len(block) <= 32 * 1024
        total += block
        pos += 4 + size
        chunks += 1
    assert pos == len(payload) and chunks >= 1
    assert total == _decompress_independently(2, payload)
    assert [r.offset - BASE_OFFSET for r in _kio(xerial).records] == sorted(keep)


def test_xerial_output_spans_several_chunks_for_large_batches() -> None:
    pairs = [(f"k{i}".encode(), _rng(3000)) for i in range(40)]
    out = filter_batch(_batch(2, 1000, pairs), set(range(1, 40)))
    assert out is not None
    payload, pos, chunks = out[61:], 16, 0
    while pos < len(payload):
        pos += 4 + struct.unpack_from(">i", payload, pos)[0]
        chunks += 1
    assert chunks == -(-len(_decompress_independently(2, payload)) // (32 * 1024)) > 1


def _read_lz4_like_kafka(frame: bytes) -> bytes:
    """An LZ4 frame read as Kafka's Lz4BlockInputStream reads it: version 1, independent
    blocks only (it refuses dependent ones), a BD block size of 64 KiB to 4 MiB, an optional
    content size skipped, each block decompressed on its own into a max-block buffer, an
    optional content checksum after the end mark."""
    assert frame[:4] == b"\x04\x22\x4d\x18"
    flg, bd = frame[4], frame[5]
    assert flg >> 6 == 1 and flg & 0x03 == 0, "version 1, reserved bits 0"
    assert flg & 0x20, "Kafka: dependent block stream is unsupported"
    assert bd & 0x8F == 0 and 4 <= (bd >> 4) & 7 <= 7
    max_block = 1 << (2 * ((bd >> 4) & 7) + 8)
    pos = 6 + (8 if flg & 0x08 else 0) + 1  # content size, header checksum
    out = b""
    while True:
        (size,) = struct.unpack_from("<I", frame, pos)
        pos += 4
        if size == 0:
            break
        stored, size = size & 0x80000000, size & 0x7FFFFFFF
        assert size <= max_block
        block = frame[pos : pos + size]
        out += block if stored else lz4.block.decompress(block, uncompressed_size=max_block)
        pos += size + (4 if flg & 0x10 else 0)
    assert pos + (4 if flg & 0x04 else 0) == len(frame)
    return out


def test_lz4_output_is_a_frame_kafka_reads() -> None:
    pairs = [(f"k{i}".encode(), (b"abc" * 700) if i % 3 else _rng(2100)) for i in range(200)]
    keep = set(range(0, 200, 2)) | {199}
    out = filter_batch(_batch(3, None, pairs), keep)
    assert out is not None
    records = _read_lz4_like_kafka(out[61:])
    assert len(records) > 2 * 64 * 1024  # several blocks, each read without the previous
    assert records == _decompress_independently(3, out[61:])
    assert [r.offset - BASE_OFFSET for r in _kio(out).records] == sorted(keep)


# --- bounds and hostile input --------------------------------------------------------------


@pytest.mark.parametrize(("codec", "xerial"), CODECS, ids=CODEC_IDS)
def test_compress_stays_within_its_worst_case_bound(codec: int, xerial: int | None) -> None:
    for size in (1, 100, 70_000, 300_000):
        data = _rng(size)
        out = compress(codec, data, xerial=xerial is not None)
        assert len(out) <= compressed_bytes_max(codec, size, xerial=xerial is not None)
        assert _decompress_independently(codec, out) == data


def test_a_decompression_bomb_is_refused_within_the_limit() -> None:
    limit = 1024 * 1024
    batch = batch_of_payload(zstd_bomb(200 * 1024 * 1024), 4, 1)  # 200 MiB of zeros
    assert len(batch) < 200_000
    for call in (record_keys, all_records_keyed, lambda b, limit: filter_batch(b, {0}, limit)):
        tracemalloc.start()
        try:
            with pytest.raises(BatchError) as info:
                call(batch, limit)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert info.value.error_code == errors.CORRUPT_MESSAGE
        assert peak < 3 * limit, f"peak {peak} bytes"


def test_the_limit_admits_a_batch_that_fits() -> None:
    batch = _batch(4, None, [(b"k", bytes(500_000)), (b"k2", b"v")])
    with pytest.raises(BatchError):
        record_keys(batch, limit=400_000)
    assert len(record_keys(batch, limit=600_000)) == 2
    assert filter_batch(batch, {1}, limit=600_000) is not None


def _count_plus_one(batch: bytes) -> bytes:
    """The record count says one record more than the bytes hold."""
    b = bytearray(batch)
    struct.pack_into(">ii", b, 53, *(x + 1 for x in struct.unpack_from(">ii", b, 53)))
    return recrc(b)


def _count_minus_one(batch: bytes) -> bytes:
    """The record count says one record fewer: bytes are left over."""
    b = bytearray(batch)
    struct.pack_into(">ii", b, 53, *(x - 1 for x in struct.unpack_from(">ii", b, 53)))
    return recrc(b)


def _truncated_record(batch: bytes) -> bytes:
    """The last record cut short, batchLength and CRC made consistent with it."""
    b = bytearray(batch[:-3])
    struct.pack_into(">i", b, 8, len(b) - 12)
    return recrc(b)


def _payload_batch(payload: bytes, count: int, codec: int = 0) -> bytes:
    return batch_of_payload(payload, codec, count)


def _record_body(delta: int, rest: bytes) -> bytes:
    body = b"\x00" + zigzag_varint(0) + zigzag_varint(delta) + rest
    return zigzag_varint(len(body)) + body


def _malformed() -> dict[str, bytes]:
    good = make_batch([(b"k", b"v"), (b"k2", b"value"), (b"k3", None)])
    one = encode_record(0, b"k", b"v")
    ok_rest = zigzag_varint(1) + b"k" + zigzag_varint(1) + b"v" + zigzag_varint(0)
    gzip_garbage = bytearray(make_batch([(b"k", b"v" * 100)] * 5, compression=1))
    gzip_garbage[75:95] = bytes(20)
    return {
        "count too high": _count_plus_one(good),
        "count too low": _count_minus_one(good),
        "record cut short": _truncated_record(good),
        "record length past the end": _payload_batch(zigzag_varint(200) + one[1:], 1),
        "negative record length": _payload_batch(zigzag_varint(-5) + one[1:], 1),
        "truncated varint": _payload_batch(one + b"\x80", 2),
        "key past the record": _payload_batch(
            _record_body(0, zigzag_varint(50) + b"k" + zigzag_varint(0) + zigzag_varint(0)), 1
        ),
        "fields shorter than the length": _payload_batch(
            zigzag_varint(len(one)) + one[1:] + b"\x00", 1
        ),
        "negative header count": _payload_batch(
            _record_body(0, ok_rest[:-1] + zigzag_varint(-3)), 1
        ),
        "null header key": _payload_batch(
            _record_body(0, ok_rest[:-1] + zigzag_varint(1) + zigzag_varint(-1)), 1
        ),
        "header count past the record": _payload_batch(
            _record_body(0, ok_rest[:-1] + zigzag_varint(1_000_000)), 1
        ),
        "offset deltas not rising": _payload_batch(
            encode_record(0, b"a", b"1")
            + encode_record(2, b"b", b"2")
            + encode_record(1, b"c", b"3"),
            3,
        ),
        "offset delta past lastOffsetDelta": _payload_batch(
            encode_record(0, b"a", b"1") + encode_record(5, b"b", b"2"), 2
        ),
        "record ends before its key": _payload_batch(
            zigzag_varint(3) + b"\x00\x00\x00" + encode_record(1, b"k", b"v"), 2
        ),
        "batch length past the bytes": good[:-1],
        "corrupt gzip": recrc(bytes(gzip_garbage)),
    }


MALFORMED = _malformed()
# The cases all_records_keyed sees too (it reads lengths and key lengths, nothing after).
STRUCTURAL = [
    "record length past the end",
    "negative record length",
    "truncated varint",
    "record ends before its key",
    "batch length past the bytes",
    "corrupt gzip",
]


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_records_are_corrupt_message(name: str) -> None:
    batch = MALFORMED[name]
    with pytest.raises(BatchError) as info:
        record_keys(batch)
    assert info.value.error_code == errors.CORRUPT_MESSAGE
    with pytest.raises(BatchError) as info:
        filter_batch(batch, {0})
    assert info.value.error_code == errors.CORRUPT_MESSAGE


def test_all_records_keyed_refuses_records_that_do_not_add_up() -> None:
    good = make_batch([(b"k", b"v")] * 3)
    cases = [_count_plus_one(good), _count_minus_one(good), _truncated_record(good)]
    cases += [MALFORMED[name] for name in STRUCTURAL]
    for bad in cases:
        with pytest.raises(BatchError) as info:
            all_records_keyed(bad)
        assert info.value.error_code == errors.CORRUPT_MESSAGE


def test_the_malformed_batches_are_malformed_to_kafka_python_too() -> None:
    # Each case is refused by an independent reader as well (its CRC is right, so only the
    # records can be wrong); offset order is a check of ours that kafka-python does not make.
    for name, batch in MALFORMED.items():
        if name.startswith("offset delta"):
            continue
        with pytest.raises(Exception):  # noqa: B017 (kafka-python raises several kinds)
            _kafka_python(batch)


def test_filter_checks_the_crc_before_rewriting() -> None:
    batch = bytearray(_batch(0, None, _pairs(5)))
    assert batch[-2:] == b"-\x00"  # the last value's last byte, then a header count of 0
    batch[-2] ^= 0x01  # the records still parse
    assert len(record_keys(bytes(batch))) == 5  # reading keys does not check the CRC
    with pytest.raises(BatchError, match="CRC") as info:
        filter_batch(bytes(batch), {0})
    assert info.value.error_code == errors.CORRUPT_MESSAGE
