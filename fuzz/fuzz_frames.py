"""Fuzz target: one client's byte stream through FrameStream and the connection's framing.

The input is everything a client sends on one connection. It is fed to a FrameStream (the
agent's socket protocol) through a stand-in transport, in chunks whose sizes follow from the
input, and read back as `kafka_server._Connection._read_loop` reads it: a 4-byte size checked
against MIN_FRAME_BYTES and `frame_bytes_max`, the body in pieces, its request header. The
buffer is small and the in-place read limit lowered, so that small inputs take every read
path (copied, in place, growing).

Beyond not crashing, it checks:
- every frame read is exactly the bytes at its place in the input, whatever the split;
- a large read is a read-only view (kio decodes only read-only buffers);
- the stream never stalls: the transport is paused only while the buffer is full, so a
  reader waiting with reading paused is a deadlock.

Fine, as the read loop treats them: the stream ending (IncompleteReadError: "eof") and a
size out of bounds (ConnectionClosed("frame_size")), both of which close the connection.
Nothing else may escape.
"""

from __future__ import annotations

import asyncio
import random
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import atheris  # type: ignore[import-untyped]
import fuzzlib

with atheris.instrument_imports():
    from shoal.protocol.framing import parse_request_header
    from shoal.server import frame_stream
    from shoal.server.frame_stream import FrameStream
    from shoal.server.kafka_server import MIN_FRAME_BYTES
    from shoal.settings import Settings

_SIZE = struct.Struct(">i")
FRAME_BYTES_MAX = Settings().frame_bytes_max
_STALL_TURNS = 200
_LOOP = asyncio.new_event_loop()


class _Transport:
    """The few transport methods FrameStream calls, recording whether reading is paused."""

    def __init__(self) -> None:
        self.paused = False
        self.closing = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@dataclass
class _Read:
    frames: list[bytes] = field(default_factory=list)
    end: str = ""


def _expected(data: bytes) -> _Read:
    """The frames and end of the input parsed as one flat buffer."""
    out = _Read()
    pos = 0
    while True:
        if len(data) - pos < 4:
            out.end = "eof"
            return out
        (size,) = _SIZE.unpack_from(data, pos)
        pos += 4
        if size < MIN_FRAME_BYTES or size > FRAME_BYTES_MAX:
            out.end = "frame_size"
            return out
        if len(data) - pos < size:
            out.end = "eof"
            return out
        out.frames.append(data[pos : pos + size])
        pos += size


async def _read_frames(stream: FrameStream, piece_bytes: int, out: _Read) -> None:
    try:
        while True:
            head = await stream.readexactly(4)
            (size,) = _SIZE.unpack(head)
            if size < MIN_FRAME_BYTES or size > FRAME_BYTES_MAX:
                out.end = "frame_size"
                return
            pieces: list[bytes | memoryview] = []
            taken = 0
            while taken < size:
                n = min(piece_bytes, size - taken)
                piece = await stream.readexactly(n)
                assert len(piece) == n, (len(piece), n)
                if isinstance(piece, memoryview):
                    assert piece.readonly, "a large read must be a read-only view"
                pieces.append(piece)
                taken += n
            frame = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            parse_request_header(frame)  # size >= 8: never raises
            out.frames.append(bytes(frame))
    except asyncio.IncompleteReadError:
        out.end = "eof"


async def _run(data: bytes, rng: random.Random) -> _Read:
    out = _Read()
    piece_bytes = rng.choice((7, 64, 300, 1 << 30))

    async def on_connect(stream: FrameStream) -> None:
        await _read_frames(stream, piece_bytes, out)

    proto = FrameStream(on_connect, buffer_bytes=16 + rng.randrange(256))
    transport = _Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    task = proto.task
    assert task is not None
    view = memoryview(data)
    while view and not task.done():
        turns = 0
        while transport.paused and not task.done():
            turns += 1
            assert turns < _STALL_TURNS, "reader waits while reading is paused: deadlock"
            await asyncio.sleep(0)
        if task.done():
            break
        want = rng.choice((1, 2, 3, 5, 17, 100, 1000, len(view)))
        buf = proto.get_buffer(want)
        assert len(buf) > 0, "get_buffer gave no room while reading is not paused"
        n = min(len(buf), len(view), want)
        buf[:n] = view[:n]
        proto.buffer_updated(n)
        view = view[n:]
        if rng.random() < 0.7:
            await asyncio.sleep(0)  # the reader runs between some callbacks, not all
    if not task.done():
        proto.eof_received()
    for _ in range(_STALL_TURNS):
        if task.done():
            break
        await asyncio.sleep(0)
    assert task.done(), "reader still waiting after end of stream"
    task.result()
    proto.connection_lost(None)
    return out


def TestOneInput(data: bytes) -> None:
    rng = random.Random(zlib.crc32(data))
    frame_stream.DIRECT_READ_MAX = 64 + rng.randrange(1024)  # reach the growing path
    got = _LOOP.run_until_complete(_run(data, rng))
    want = _expected(data)
    assert got.end == want.end, (got.end, want.end)
    assert got.frames == want.frames, "frames read differ from the input's"


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
