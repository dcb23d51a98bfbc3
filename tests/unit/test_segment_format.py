from __future__ import annotations

import struct
import time
from datetime import UTC, datetime

import pytest

from shoal.write.segment_format import (
    HEADER_BYTES,
    TRAILER_BYTES,
    BatchEntry,
    SegmentFormatError,
    decode_segment,
    encode_segment,
    file_id_ms,
    new_file_id,
    read_footer,
    segment_key,
)


def _entry(topic: str, partition: int, data: bytes, seq: int = -1) -> BatchEntry:
    return BatchEntry(
        topic=topic,
        partition=partition,
        data=data,
        record_count=3,
        base_timestamp=1_000 + seq,
        max_timestamp=2_000 + seq,
        producer_id=7 if seq >= 0 else -1,
        producer_epoch=1 if seq >= 0 else -1,
        base_sequence=seq,
        attributes=0x10 if seq == 5 else 0,
    )


def _sample() -> list[BatchEntry]:
    return [
        _entry("orders", 0, b"A" * 10, 0),
        _entry("payments", 2, b"B" * 7, 1),
        _entry("orders", 0, b"C" * 5, 2),
        _entry("orders", 1, memoryview(b"D" * 3).tobytes(), 3),
        _entry("payments", 2, b"E" * 4, 5),
    ]


def test_round_trip_groups_by_partition_in_arrival_order() -> None:
    entries = _sample()
    data, placed = encode_segment(entries)
    assert data[:4] == b"SHSG"
    assert data[-4:] == b"SHSG"
    assert struct.unpack(">H", data[4:6])[0] == 1

    # placed[i] describes entries[i], and its bytes are in the file where it says.
    assert len(placed) == len(entries)
    for entry, p in zip(entries, placed, strict=True):
        assert (p.topic, p.partition) == (entry.topic, entry.partition)
        assert data[p.byte_pos : p.byte_pos + p.byte_len] == bytes(entry.data)

    # The file: orders/0 chunk (A, C), then payments/2 (B, E), then orders/1 (D).
    body_end = HEADER_BYTES + sum(len(e.data) for e in entries)
    assert data[HEADER_BYTES:body_end] == b"A" * 10 + b"C" * 5 + b"B" * 7 + b"E" * 4 + b"D" * 3

    decoded = decode_segment(data)
    assert [d.byte_pos for d in decoded] == sorted(p.byte_pos for p in placed)
    assert sorted(decoded, key=lambda e: e.byte_pos) == sorted(placed, key=lambda e: e.byte_pos)
    by_pos = {d.byte_pos: d for d in decoded}
    transactional = by_pos[placed[4].byte_pos]
    assert transactional.is_transactional
    assert transactional.base_sequence == 5
    assert transactional.max_timestamp == 2_005


def test_read_footer_from_tail_only() -> None:
    data, placed = encode_segment(_sample())
    footer_len = struct.unpack(">QII4s", data[-TRAILER_BYTES:])[1]
    tail = data[-(footer_len + TRAILER_BYTES) :]
    entries = read_footer(tail, len(data))
    assert sorted(entries, key=lambda e: e.byte_pos) == sorted(placed, key=lambda e: e.byte_pos)
    with pytest.raises(SegmentFormatError):
        read_footer(tail[5:], len(data))


def test_empty_segment_round_trips() -> None:
    data, placed = encode_segment([])
    assert placed == []
    assert decode_segment(data) == []


def test_corrupt_footer_is_detected() -> None:
    data, _ = encode_segment(_sample())
    footer_pos = struct.unpack(">QII4s", data[-TRAILER_BYTES:])[0]
    broken = bytearray(data)
    broken[footer_pos + 8] ^= 0xFF
    with pytest.raises(SegmentFormatError, match="CRC"):
        decode_segment(bytes(broken))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d[:-1],  # truncated
        lambda d: b"XXXX" + d[4:],  # header magic
        lambda d: d[:-4] + b"NOPE",  # trailer magic
        lambda d: d[:4] + struct.pack(">H", 9) + d[6:],  # unknown version
        lambda d: b"SHSG",  # too short
    ],
)
def test_malformed_files_raise(mangle: object) -> None:
    data, _ = encode_segment(_sample())
    assert callable(mangle)
    with pytest.raises(SegmentFormatError):
        decode_segment(mangle(data))


def test_file_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_file_id() for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 26 for i in ids)

    early = new_file_id(now_ms=1_700_000_000_000)
    # Clock stepping back inside one process still yields increasing ids.
    assert early > ids[-1]
    assert new_file_id(now_ms=1_700_000_000_000) > early


def test_file_id_encodes_its_time_and_day_key() -> None:
    # Ahead of every id this process made, so the monotonic guard leaves it alone.
    ms = int(time.time() * 1000) + 400 * 86_400_000
    fid = new_file_id(now_ms=ms)
    assert file_id_ms(fid) == ms
    day = datetime.fromtimestamp(ms / 1000, tz=UTC)
    assert segment_key(fid) == f"segments/{day:%Y}/{day:%m}/{day:%d}/{fid}.seg"
