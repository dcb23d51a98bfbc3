"""Fuzz target: record-batch validation, record scanning and bounded decompression.

The input is a Produce partition's `records` field. It goes through `split_batches` as the
Produce handler calls it (BatchError is answered as the partition's error code), twice: as
it is, and with every batch's CRC-32C recomputed so that mutations reach past the CRC check.
Each batch accepted is scanned as ListOffsets scans a stored batch (`list_offsets._scan`:
`first_at_or_after` / `max_timestamp_record`, with BatchError and ValueError read as "no
exact record"), which decompresses it. Separately, the input after its first byte is
decompressed with the codec that byte names and a small limit: the output may never exceed
the limit (BatchError when it would).

Checks beyond not crashing: every accepted batch is exactly its header's size and its
fields pass the checks `split_batches` documents; decompression stays within its limit.
"""

from __future__ import annotations

import contextlib
import struct

import atheris  # type: ignore[import-untyped]
import fuzzlib

with atheris.instrument_imports():
    from crc32c import crc32c

    from shoal.protocol.batch import (
        CRC_START,
        HEADER_BYTES,
        LOG_OVERHEAD,
        BatchError,
        split_batches,
    )
    from shoal.protocol.records import decompress, first_at_or_after, max_timestamp_record
    from shoal.settings import Settings

MESSAGE_BYTES_MAX = Settings().message_bytes_max
DECOMPRESS_LIMIT = 64 * 1024
_LENGTH = struct.Struct(">i")
_CRC = struct.Struct(">I")
_CRC_AT = 17  # baseOffset 8, batchLength 4, partitionLeaderEpoch 4, magic 1


def with_crcs_fixed(data: bytes) -> bytes:
    """`data` with the CRC of each batch that fits recomputed."""
    out = bytearray(data)
    pos = 0
    while len(out) - pos >= HEADER_BYTES:
        (length,) = _LENGTH.unpack_from(out, pos + 8)
        size = length + LOG_OVERHEAD
        if size < HEADER_BYTES or pos + size > len(out):
            break
        _CRC.pack_into(out, pos + _CRC_AT, crc32c(bytes(out[pos + CRC_START : pos + size])))
        pos += size
    return bytes(out)


def _scan(batch: bytes) -> None:
    with contextlib.suppress(BatchError, ValueError):
        max_timestamp_record(batch)
    with contextlib.suppress(BatchError, ValueError):
        first_at_or_after(batch, 0)


def TestOneInput(data: bytes) -> None:
    for records in (data, with_crcs_fixed(data)):
        try:
            batches = split_batches(records, MESSAGE_BYTES_MAX)
        except BatchError:
            continue
        assert sum(len(b) for b, _ in batches) == len(records)
        for batch, header in batches:
            assert len(batch) == header.size <= MESSAGE_BYTES_MAX
            assert header.magic == 2 and header.record_count > 0
            assert header.last_offset_delta == header.record_count - 1
            _scan(batch)
    if len(data) > 1 and data[0] % 5:
        try:
            out = decompress(data[0] % 5, data[1:], DECOMPRESS_LIMIT)
        except BatchError:
            return
        assert len(out) <= DECOMPRESS_LIMIT, len(out)


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
