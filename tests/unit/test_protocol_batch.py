from __future__ import annotations

import datetime
import io
import struct

import cramjam
import pytest
from kio.records.readers import read_batch
from kio.records.schema import NewRecordBatch, Record
from kio.records.writers import write_new_batch
from kio.static.primitive import TZAwareMicros, i8, i16, i32, i64

from shoal.protocol import errors
from shoal.protocol.batch import (
    HEADER_BYTES,
    BatchError,
    BatchHeader,
    parse_header,
    patch_base_offset,
    patch_base_offset_into,
    split_batches,
    with_log_append_time,
)
from tests.unit.batchgen import make_batch, recrc

LIMIT = 1 << 20


def _error(records: bytes | None, limit: int = LIMIT) -> int:
    with pytest.raises(BatchError) as info:
        split_batches(records, limit)
    return info.value.error_code


# --- batchgen agrees with kio ---------------------------------------------------------------


def test_make_batch_matches_kio_writer() -> None:
    ts = 1_700_000_000_000
    moment = TZAwareMicros.parse(datetime.datetime.fromtimestamp(ts / 1000, datetime.UTC))
    pairs: list[tuple[bytes | None, bytes | None]] = [
        (b"k1", b"v1"),
        (None, b"v" * 300),
        (b"k3", None),
    ]
    buf = io.BytesIO()
    write_new_batch(
        buf,
        NewRecordBatch(
            producer_id=i64(7),
            producer_epoch=i16(1),
            partition_leader_epoch=i32(0),
            base_sequence=i32(42),
            attributes=i16(0),
            records=tuple(
                Record(
                    attributes=i8(0),
                    timestamp=moment,
                    offset=i64(100 + i),
                    key=k,
                    value=v,
                    headers=(),
                )
                for i, (k, v) in enumerate(pairs)
            ),
        ),
    )
    ours = make_batch(
        pairs,
        base_offset=100,
        producer_id=7,
        producer_epoch=1,
        base_sequence=42,
        timestamp_ms=ts,
        partition_leader_epoch=0,
    )
    assert ours == buf.getvalue()


def test_make_batch_is_readable_by_kio() -> None:
    batch = make_batch([(b"a", b"1"), (b"b", None)], base_offset=5, headers=[(b"h", b"x")])
    decoded, size = read_batch(batch, 0)
    assert size == len(batch)
    assert [(r.key, r.value, r.offset) for r in decoded.records] == [
        (b"a", b"1", 5),
        (b"b", None, 6),
    ]
    assert decoded.records[0].headers[0].key == b"h"


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_make_batch_compressed_payload_decompresses(codec: int) -> None:
    plain = make_batch([(b"k", b"value" * 50)] * 4)
    packed = make_batch([(b"k", b"value" * 50)] * 4, compression=codec)
    ((_, header),) = split_batches(packed, LIMIT)
    assert header.compression == codec
    payload = packed[HEADER_BYTES:]
    decompress = {
        1: cramjam.gzip.decompress,
        2: cramjam.snappy.decompress_raw,
        3: cramjam.lz4.decompress,
        4: cramjam.zstd.decompress,
    }[codec]
    assert bytes(decompress(payload)) == plain[HEADER_BYTES:]


# --- split_batches: accepted input ----------------------------------------------------------


def test_single_batch_is_returned_without_copy() -> None:
    batch = make_batch([(b"k", b"v")], producer_id=9, producer_epoch=2, base_sequence=10)
    [(data, header)] = split_batches(batch, LIMIT)
    assert data is batch
    assert header == BatchHeader(
        base_offset=0,
        batch_length=len(batch) - 12,
        partition_leader_epoch=-1,
        magic=2,
        crc=struct.unpack_from(">I", batch, 17)[0],
        attributes=0,
        last_offset_delta=0,
        base_timestamp=header.base_timestamp,
        max_timestamp=header.max_timestamp,
        producer_id=9,
        producer_epoch=2,
        base_sequence=10,
        record_count=1,
    )
    assert header.size == len(batch)


def test_several_concatenated_batches() -> None:
    batches = [make_batch([(b"k", b"v" * i)] * i, base_sequence=i) for i in (1, 2, 3)]
    out = split_batches(b"".join(batches), LIMIT)
    assert [data for data, _ in out] == batches
    assert [h.record_count for _, h in out] == [1, 2, 3]
    assert [h.last_offset_delta for _, h in out] == [0, 1, 2]


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_accepts_other_buffers(kind: type) -> None:
    batch = make_batch([(b"k", b"v")])
    [(data, _)] = split_batches(kind(batch), LIMIT)
    assert data == batch
    assert type(data) is bytes


def test_header_flags() -> None:
    batch = make_batch(
        [(b"k", b"v")],
        producer_id=1,
        producer_epoch=0,
        base_sequence=0,
        transactional=True,
        compression=4,
    )
    [(_, h)] = split_batches(batch, LIMIT)
    assert h.is_transactional
    assert not h.is_control
    assert h.compression == 4
    assert h.timestamp_type == 0
    h2 = parse_header(recrc(_set_attributes(batch, 0x08)))
    assert h2.timestamp_type == 1
    assert h2.compression == 0


def test_control_batch_only_when_allowed() -> None:
    batch = make_batch(
        [(b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00")],
        producer_id=3,
        producer_epoch=0,
        base_sequence=-1,
        control=True,
        transactional=True,
    )
    with pytest.raises(BatchError) as info:
        split_batches(batch, LIMIT)
    assert info.value.error_code == errors.INVALID_RECORD
    [(_, h)] = split_batches(batch, LIMIT, allow_control=True)
    assert h.is_control


# --- split_batches: refused input -----------------------------------------------------------


def _set_attributes(batch: bytes, attributes: int) -> bytes:
    buf = bytearray(batch)
    struct.pack_into(">h", buf, 21, attributes)
    return bytes(buf)


def _set_sequence(batch: bytes, seq: int) -> bytes:
    buf = bytearray(batch)
    struct.pack_into(">i", buf, 53, seq)
    return bytes(buf)


def test_empty_or_none_records() -> None:
    assert _error(None) == errors.INVALID_RECORD
    assert _error(b"") == errors.INVALID_RECORD


def test_bad_crc_is_corrupt_message() -> None:
    batch = bytearray(make_batch([(b"k", b"value")]))
    batch[-1] ^= 0xFF
    assert _error(bytes(batch)) == errors.CORRUPT_MESSAGE


def test_crc_does_not_cover_base_offset_but_covers_attributes() -> None:
    batch = make_batch([(b"k", b"v")])
    assert split_batches(patch_base_offset(batch, 12345), LIMIT)[0][1].base_offset == 12345
    assert _error(_set_attributes(batch, 1)) == errors.CORRUPT_MESSAGE


@pytest.mark.parametrize("magic", [0, 1, 3])
def test_wrong_magic_is_invalid_record(magic: int) -> None:
    buf = bytearray(make_batch([(b"k", b"v")]))
    buf[16] = magic
    assert _error(bytes(buf)) == errors.INVALID_RECORD


def test_length_field_below_header_is_corrupt() -> None:
    buf = bytearray(make_batch([(b"k", b"v")]))
    struct.pack_into(">i", buf, 8, 20)
    assert _error(bytes(buf)) == errors.CORRUPT_MESSAGE


def test_length_field_beyond_data_is_invalid_record() -> None:
    buf = bytearray(make_batch([(b"k", b"v")]))
    struct.pack_into(">i", buf, 8, len(buf))  # claims 12 more bytes than there are
    assert _error(bytes(buf)) == errors.INVALID_RECORD


@pytest.mark.parametrize("cut", [1, 30, HEADER_BYTES, HEADER_BYTES + 3])
def test_truncated_trailing_batch(cut: int) -> None:
    good = make_batch([(b"k", b"v" * 20)])
    second = make_batch([(b"k", b"w" * 20)])
    assert _error(good + second[:cut]) == errors.INVALID_RECORD


def test_too_large_batch() -> None:
    batch = make_batch([(b"k", b"v" * 1000)])
    assert split_batches(batch, len(batch))[0][0] is batch
    assert _error(batch, len(batch) - 1) == errors.MESSAGE_TOO_LARGE


def test_too_large_is_checked_per_batch() -> None:
    small = make_batch([(b"k", b"v")])
    assert len(split_batches(small * 3, len(small))) == 3


@pytest.mark.parametrize("count", [0, -1, 2])
def test_record_count_mismatch(count: int) -> None:
    buf = bytearray(make_batch([(b"k", b"v")]))
    struct.pack_into(">i", buf, 57, count)
    assert _error(recrc(buf)) == errors.INVALID_RECORD


def test_last_offset_delta_mismatch() -> None:
    buf = bytearray(make_batch([(b"k", b"v"), (b"k", b"w")]))
    struct.pack_into(">i", buf, 23, 5)
    assert _error(recrc(buf)) == errors.INVALID_RECORD


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_unknown_codec(codec: int) -> None:
    batch = make_batch([(b"k", b"v")])
    assert _error(recrc(_set_attributes(batch, codec))) == errors.INVALID_RECORD


def test_producer_id_without_sequence() -> None:
    batch = make_batch([(b"k", b"v")], producer_id=5, producer_epoch=0, base_sequence=-1)
    assert _error(batch) == errors.INVALID_RECORD


def test_second_batch_error_is_reported() -> None:
    good = make_batch([(b"k", b"v")])
    bad = bytearray(make_batch([(b"k", b"v")]))
    bad[-1] ^= 1
    assert _error(good + bytes(bad)) == errors.CORRUPT_MESSAGE


# --- patching -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_patch_base_offset(kind: type) -> None:
    batch = make_batch([(b"k", b"v"), (b"k2", b"v2")])
    patched = patch_base_offset(kind(batch), 2**40 + 3)
    assert type(patched) is bytes
    assert patched[8:] == batch[8:]
    [(_, h)] = split_batches(patched, LIMIT)
    assert h.base_offset == 2**40 + 3
    assert h.last_offset == 2**40 + 4
    decoded, _ = read_batch(patched, 0)  # kio checks the CRC too
    assert [r.offset for r in decoded.records] == [2**40 + 3, 2**40 + 4]


def test_patch_base_offset_into() -> None:
    a = make_batch([(b"k", b"v")])
    b = make_batch([(b"x", b"y")] * 3)
    buf = bytearray(a + b)
    patch_base_offset_into(buf, 0, 10)
    patch_base_offset_into(buf, len(a), 11)
    out = split_batches(buf, LIMIT)
    assert [h.base_offset for _, h in out] == [10, 11]
    assert bytes(buf[len(a) + 8 :]) == b[8:]


def test_parse_header_truncated() -> None:
    with pytest.raises(BatchError) as info:
        parse_header(b"\x00" * 60)
    assert info.value.error_code == errors.INVALID_RECORD


# --- LogAppendTime ---------------------------------------------------------------------------


def test_log_append_time_stamps_the_header_and_keeps_the_records() -> None:
    batch = make_batch([(b"k", b"a"), (b"k", b"b")], timestamp_ms=1_000, timestamp_step_ms=5)
    stamped, header = with_log_append_time(batch, 1_700_000_000_123)
    assert (header.timestamp_type, header.max_timestamp) == (1, 1_700_000_000_123)
    assert header.base_timestamp == 1_000
    # The CRC is right again (split_batches checks it), and only attributes, maxTimestamp and
    # the CRC changed.
    ((_, checked),) = split_batches(stamped, LIMIT)
    assert checked == header
    changed = [i for i, (a, b) in enumerate(zip(batch, stamped, strict=True)) if a != b]
    assert changed and all(i in range(17, 23) or i in range(35, 43)
                           for i in changed)  # fmt: skip
    # kio (another decoder, which checks the CRC too) reads it back.
    decoded, _ = read_batch(stamped, 0)
    assert [r.value for r in decoded.records] == [b"a", b"b"]
