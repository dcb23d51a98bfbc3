"""Fuzz target: the segment file reader (`segment_format.decode_segment`, `read_footer`).

The input is a whole segment file. It is decoded as it is, and with the footer CRC-32C in
its trailer recomputed, so that mutations reach the footer parser. SegmentFormatError (a
ValueError) is the reader's one error for bytes that are not a valid segment; nothing else
may escape. Beyond that: every entry returned lies inside the data region, entries come in
file order, and reading the footer from the file's tail alone (as from one ranged GET) gives
the same entries.
"""

from __future__ import annotations

import struct

import atheris  # type: ignore[import-untyped]
import fuzzlib

with atheris.instrument_imports():
    from crc32c import crc32c

    from shoal.write.segment_format import (
        HEADER_BYTES,
        TRAILER,
        TRAILER_BYTES,
        SegmentFormatError,
        decode_segment,
        read_footer,
    )

_CRC = struct.Struct(">I")


def with_footer_crc_fixed(data: bytes) -> bytes:
    """`data` with the trailer's footer CRC recomputed, when the trailer places a footer."""
    if len(data) < TRAILER_BYTES:
        return data
    footer_pos, footer_len, _, _ = TRAILER.unpack_from(data, len(data) - TRAILER_BYTES)
    if footer_pos + footer_len + TRAILER_BYTES != len(data):
        return data
    out = bytearray(data)
    _CRC.pack_into(out, len(out) - 8, crc32c(data[footer_pos : footer_pos + footer_len]))
    return bytes(out)


def TestOneInput(data: bytes) -> None:
    for blob in (data, with_footer_crc_fixed(data)):
        try:
            entries = decode_segment(blob)
        except SegmentFormatError:
            continue
        footer_pos, _, _, _ = TRAILER.unpack_from(blob, len(blob) - TRAILER_BYTES)
        for e in entries:
            assert e.byte_pos >= HEADER_BYTES and e.byte_pos + e.byte_len <= footer_pos
        assert [e.byte_pos for e in entries] == sorted(e.byte_pos for e in entries)
        tail = blob[footer_pos:]
        assert sorted(read_footer(tail, len(blob)), key=lambda e: e.byte_pos) == entries


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
