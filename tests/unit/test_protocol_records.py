from __future__ import annotations

import struct

import cramjam
import pytest

from shoal.protocol.batch import BatchError
from shoal.protocol.records import first_at_or_after, max_timestamp_record, record_timestamps
from tests.unit.batchgen import make_batch, recrc

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
