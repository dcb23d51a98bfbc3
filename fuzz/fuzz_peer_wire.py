"""Fuzz target: the agent-to-agent block-read wire format (`read/peer_wire.py`).

The input is `u32 n | request (n bytes) | response`. The request is decoded as the peer
server decodes a POST body (WireError is answered 400); a request that decodes must encode
back to the same bytes and stay within the documented limits. The response is then decoded
against that request as the peer client does (WireError counts as a failed peer); every
chunk it returns is exactly its range's length. Nothing else may escape either decoder.
"""

from __future__ import annotations

import struct

import atheris  # type: ignore[import-untyped]
import fuzzlib

with atheris.instrument_imports():
    from shoal.read.peer_wire import (
        FILES_MAX,
        RANGES_MAX,
        REQUEST_BYTES_MAX,
        WireError,
        decode_request,
        decode_response,
        encode_request,
    )

_N = struct.Struct(">I")


def split_input(data: bytes) -> tuple[bytes, bytes]:
    """(request, response) of an input laid out as `u32 n | request | response`."""
    if len(data) < _N.size:
        return data, b""
    (n,) = _N.unpack_from(data, 0)
    body = data[_N.size :]
    return body[:n], body[n:]


def TestOneInput(data: bytes) -> None:
    request, response = split_input(data)
    try:
        files = decode_request(request)
    except WireError:
        return
    assert encode_request(files) == request
    assert len(files) <= FILES_MAX
    assert sum(len(f.ranges) for f in files) <= RANGES_MAX
    assert sum(f.byte_count() for f in files) <= REQUEST_BYTES_MAX
    try:
        chunks = decode_response(response, files)
    except WireError:
        return
    for f, file_chunks in zip(files, chunks, strict=True):
        for (_, length), chunk in zip(f.ranges, file_chunks, strict=True):
            assert chunk is None or len(chunk) == length


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
