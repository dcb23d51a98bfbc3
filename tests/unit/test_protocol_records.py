from __future__ import annotations

import struct
import tracemalloc

import cramjam
import pytest

from shoal.protocol.batch import BatchError
from shoal.protocol.records import (
    DECOMPRESSED_BYTES_MAX,
    decompress,
    first_at_or_after,
    max_timestamp_record,
    record_timestamps,
)
from tests.unit.batchgen import batch_of_payload, make_batch, recrc, zstd_bomb

RECORDS: list[tuple[bytes | None, bytes | None]] = [
    (f"k{i}".encode(), b"v" * (i * 13 % 200)) for i in range(50)
]


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_record_timestamps_every_codec(codec: int) -> None:
    batch = make_batch(RECORDS, timestamp_ms=1000, compression=codec, timestamp_step_ms=1)
    got = list(record_timestamps(batch))
    assert [d for d, _ in got] == list(range(50))
    assert [ts for _, ts in got] == [1000 + i for i in range(50)]
    assert first_at_or_after(batch, 1020) == (20, 1020)
    assert first_at_or_after(batch, 2000) is None
    assert max_timestamp_record(batch) == (49, 1049)


def test_xerial_framed_snappy() -> None:
    plain = make_batch(RECORDS, timestamp_ms=5, timestamp_step_ms=1)
    records = plain[61:]
    block = bytes(cramjam.snappy.compress_raw(records))
    framed = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + struct.pack(">i", len(block)) + block
    header = bytearray(plain[:61])
    struct.pack_into(">h", header, 21, 2)  # attributes: snappy
    struct.pack_into(">i", header, 8, 61 - 12 + len(framed))  # batchLength
    batch = recrc(bytes(header) + framed)
    assert list(record_timestamps(batch))[-1] == (49, 54)


def test_garbage_payload_is_a_batch_error() -> None:
    batch = bytearray(make_batch(RECORDS, compression=1, timestamp_step_ms=1))
    batch[70:90] = b"\x00" * 20
    with pytest.raises(BatchError):
        list(record_timestamps(recrc(bytes(batch))))


@pytest.mark.parametrize("codec", [1, 3, 4])
def test_a_bomb_is_refused_without_inflating_past_the_limit(codec: int) -> None:
    limit = 1024 * 1024
    records = make_batch([(None, bytes(16 * limit))], compression=codec)
    payload = records[61:]
    tracemalloc.start()
    try:
        with pytest.raises(BatchError, match="within"):
            decompress(codec, payload, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * limit, f"peak {peak} bytes"


def test_a_zstd_bomb_claiming_gigabytes_is_refused_at_the_default_limit() -> None:
    payload = zstd_bomb(1024 * 1024 * 1024)  # 1 GiB of zeros in about 32 KB
    assert len(payload) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(BatchError):
            list(record_timestamps(batch_of_payload(payload, 4, 1)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * DECOMPRESSED_BYTES_MAX


def test_within_the_limit_decompression_is_exact() -> None:
    batch = make_batch(RECORDS, compression=4, timestamp_step_ms=1)
    records = make_batch(RECORDS, timestamp_step_ms=1)[61:]
    assert decompress(4, batch[61:], len(records)) == records
    with pytest.raises(BatchError):
        decompress(4, batch[61:], len(records) - 1)


def test_snappy_blocks_state_their_size_and_are_checked_first() -> None:
    block = bytes(cramjam.snappy.compress_raw(bytes(4096)))
    assert decompress(2, block, 4096) == bytes(4096)
    with pytest.raises(BatchError, match="exceeds"):
        decompress(2, block, 4095)


@pytest.mark.parametrize("cut", [1, 3, 5, 9])
def test_truncated_xerial_snappy_is_a_batch_error(cut: int) -> None:
    block = bytes(cramjam.snappy.compress_raw(b"x" * 100))
    framed = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + struct.pack(">i", len(block)) + block
    with pytest.raises(BatchError):
        decompress(2, framed[: 16 + cut])
