"""FrameStream over real loopback sockets: exact reads of every size, in any split, bounded
read-ahead, end of stream and the writer half."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from shoal.server import frame_stream
from shoal.server.frame_stream import FrameStream

BUFFER = 1024  # small, so the tests cross every path: small, in place, growing


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Every test on asyncio's loop and on uvloop (the agent's): their transports differ in
    when they call get_buffer and what a write to a closed transport does."""
    if request.param == "uvloop":
        import uvloop

        policy: asyncio.AbstractEventLoopPolicy = uvloop.EventLoopPolicy()
        return policy
    return asyncio.DefaultEventLoopPolicy()


class Served:
    def __init__(self) -> None:
        self.streams: asyncio.Queue[FrameStream] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def on_connect(self, stream: FrameStream) -> None:
        await self.streams.put(stream)
        await stream.wait_closed()


@pytest.fixture
async def served() -> AsyncIterator[tuple[Served, int]]:
    s = Served()
    loop = asyncio.get_running_loop()
    s.server = await loop.create_server(lambda: FrameStream(s.on_connect, BUFFER), "127.0.0.1", 0)
    port = s.server.sockets[0].getsockname()[1]
    yield s, port
    s.server.close()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def test_reads_frames_of_every_size_in_any_split(served: tuple[Served, int]) -> None:
    s, port = served
    _, writer = await connect(port)
    stream = await s.streams.get()
    sizes = [0, 1, 7, 511, 512, 1023, 1024, 1025, 5000, 300_000, 3, 5 * 1024 * 1024, 9]
    bodies = [os.urandom(n) for n in sizes]
    wire = b"".join(struct.pack(">i", len(b)) + b for b in bodies)

    async def send() -> None:
        # Odd piece sizes, so frames and size prefixes are cut everywhere.
        pos, step = 0, 1
        while pos < len(wire):
            writer.write(wire[pos : pos + step])
            await writer.drain()
            pos += step
            step = step * 7 % 65_521 + 1

    sender = asyncio.create_task(send())
    for body in bodies:
        (size,) = struct.unpack(">i", await stream.readexactly(4))
        got = await stream.readexactly(size)
        assert bytes(got) == body
        if len(body) >= BUFFER // 2:
            # Large reads come back read-only (kio's decoders insist on that).
            assert isinstance(got, bytes) or memoryview(got).readonly
    await sender
    writer.close()


async def test_read_ahead_is_bounded_while_nobody_reads(served: tuple[Served, int]) -> None:
    s, port = served
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setblocking(False)
    stream = await s.streams.get()
    sent = 0
    chunk = b"x" * 65_536
    # Keep sending until the kernel refuses: the agent side stopped reading.
    for _ in range(2_000):
        try:
            sent += raw.send(chunk)
        except BlockingIOError:
            await asyncio.sleep(0.05)
            try:
                sent += raw.send(chunk)
            except BlockingIOError:
                break
        await asyncio.sleep(0)
    else:
        pytest.fail("the socket never pushed back: reading was not paused")
    assert stream._end - stream._start <= BUFFER
    # Everything sent is still there, in order, once somebody reads.
    got = bytes(await stream.readexactly(sent))
    assert got == b"x" * sent
    raw.close()


async def test_end_of_stream_mid_frame_raises_incomplete_read(served: tuple[Served, int]) -> None:
    s, port = served
    for announced, sent in ((100, 10), (100_000, 50_000), (8 * 1024 * 1024, 1024 * 1024)):
        _, writer = await connect(port)
        stream = await s.streams.get()
        writer.write(struct.pack(">i", announced) + b"\0" * sent)
        await writer.drain()
        writer.close()
        (size,) = struct.unpack(">i", await stream.readexactly(4))
        with pytest.raises(asyncio.IncompleteReadError):
            await stream.readexactly(size)
        # And every read after that fails the same way, never hangs.
        with pytest.raises(asyncio.IncompleteReadError):
            await asyncio.wait_for(stream.readexactly(1), 1.0)


async def test_growing_read_holds_only_what_arrived(served: tuple[Served, int]) -> None:
    s, port = served
    _, writer = await connect(port)
    stream = await s.streams.get()
    announced = frame_stream.DIRECT_READ_MAX * 20
    writer.write(b"\1" * 1000)
    await writer.drain()
    reading = asyncio.create_task(stream.readexactly(announced))
    await asyncio.sleep(0.1)
    assert not reading.done()
    # Nothing of the announced size was allocated: only the fixed buffer exists.
    assert stream._target is None
    writer.close()
    with pytest.raises(asyncio.IncompleteReadError):
        await reading


async def test_feed_eof_wakes_a_waiting_read(served: tuple[Served, int]) -> None:
    s, port = served
    _, writer = await connect(port)
    stream = await s.streams.get()
    reading = asyncio.create_task(stream.readexactly(4))
    await asyncio.sleep(0.05)
    stream.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError):
        await asyncio.wait_for(reading, 1.0)
    writer.close()


async def test_writer_half_sends_in_order_and_reports_a_lost_peer(
    served: tuple[Served, int],
) -> None:
    s, port = served
    reader, writer = await connect(port)
    stream = await s.streams.get()
    assert stream.get_extra_info("peername") == writer.get_extra_info("sockname")
    parts = [os.urandom(n) for n in (1, 1000, 3_000_000, 5)]
    stream.writelines(parts)
    await stream.drain()
    assert await reader.readexactly(sum(map(len, parts))) == b"".join(parts)
    # The peer resets the connection: drain raises rather than waiting forever.
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    await asyncio.wait_for(stream.wait_closed(), 5.0)
    with pytest.raises(ConnectionResetError):
        stream.writelines([b"late"])
        await stream.drain()
