"""KafkaConnection against an in-process asyncio fake broker: framing, version negotiation,
correlation of out-of-order answers, timeouts, bounded frames, closes."""

from __future__ import annotations

import asyncio
import datetime
import struct
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from kio.schema.api_versions.v0.response import ApiVersion as ApiVersionV0
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.schema.api_versions.v1.response import ApiVersion as ApiVersionV1
from kio.schema.api_versions.v1.response import ApiVersionsResponse as ApiVersionsResponseV1
from kio.schema.api_versions.v3.response import ApiVersion, ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.schema.find_coordinator.v3.request import FindCoordinatorRequest
from kio.schema.find_coordinator.v3.response import FindCoordinatorResponse
from kio.schema.types import BrokerId
from kio.static.primitive import i8, i16, i32, i32Timedelta

from shoal.client.connection import (
    ConnectError,
    ConnectionClosed,
    KafkaConnection,
    ProtocolViolation,
    RequestTimeout,
    UnsupportedApi,
)
from shoal.protocol.framing import decode_request, encode_response

ZERO = i32Timedelta.parse(datetime.timedelta(0))
# (api_key, min, max) advertised by the fake broker by default.
ADVERTISED = ((18, 0, 3), (10, 0, 4), (3, 4, 9))

Handler = Callable[[asyncio.StreamWriter, Any, Any], Coroutine[Any, Any, None]]


class FakeBroker:
    """Decodes each request frame and hands it to `on_request` in its own task, so a handler
    may answer late or never while later requests are answered."""

    def __init__(self) -> None:
        self.on_request: Handler = self.default
        self.requests: list[tuple[int, int]] = []  # (api_key, version) in arrival order
        self.advertised: tuple[tuple[int, int, int], ...] = ADVERTISED
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> FakeBroker:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for w in self.writers:
            w.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                header, request = decode_request(await reader.readexactly(size))
                self.requests.append((int(header.request_api_key), int(header.request_api_version)))
                task = asyncio.create_task(self.on_request(writer, header, request))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def default(self, writer: asyncio.StreamWriter, header: Any, request: Any) -> None:
        if header.request_api_key == 18:
            writer.write(encode_response(header.correlation_id, self.api_versions()))
        elif header.request_api_key == 10:
            await self.answer_find_coordinator(writer, header, request)

    def api_versions(self) -> ApiVersionsResponse:
        return ApiVersionsResponse(
            error_code=ErrorCode.none,
            api_keys=tuple(
                ApiVersion(api_key=i16(k), min_version=i16(lo), max_version=i16(hi))
                for k, lo, hi in self.advertised
            ),
            throttle_time=ZERO,
        )

    @staticmethod
    async def answer_find_coordinator(
        writer: asyncio.StreamWriter, header: Any, request: Any, delay_s: float = 0.0
    ) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        node = int(request.key.rsplit("-", 1)[1])  # keys are "group-<n>": answer node n
        response = FindCoordinatorResponse(
            throttle_time=ZERO,
            error_code=ErrorCode.none,
            error_message=None,
            node_id=BrokerId(node),
            host=request.key,
            port=i32(9092),
        )
        writer.write(encode_response(header.correlation_id, response))


@pytest.fixture
async def broker() -> AsyncIterator[FakeBroker]:
    fake = await FakeBroker().start()
    try:
        yield fake
    finally:
        await fake.stop()


async def connect(broker: FakeBroker, **kwargs: Any) -> KafkaConnection:
    return await KafkaConnection.open("127.0.0.1", broker.port, **kwargs)


def find(key: str) -> FindCoordinatorRequest:
    return FindCoordinatorRequest(key=key, key_type=i8(0))


async def test_negotiation_picks_the_highest_common_version(broker: FakeBroker) -> None:
    conn = await connect(broker)
    try:
        assert broker.requests == [(18, 3)]
        assert conn.pick_version(10, 1, 6) == 4  # broker's max
        assert conn.pick_version(10, 1, 3) == 3  # client's max
        assert conn.pick_version(3, 1, 12) == 9
        with pytest.raises(UnsupportedApi, match="serves v4-9"):
            conn.pick_version(3, 1, 3)  # no overlap
        with pytest.raises(UnsupportedApi, match="does not serve API 42"):
            conn.pick_version(42, 0, 2)
    finally:
        await conn.close()


async def test_api_versions_falls_back_when_the_broker_answers_in_v0(broker: FakeBroker) -> None:
    async def old_broker(writer: asyncio.StreamWriter, header: Any, request: Any) -> None:
        if header.request_api_version > 1:
            # What Kafka does for an ApiVersions version it does not know: a v0 answer.
            response: Any = ApiVersionsResponseV0(
                error_code=ErrorCode.unsupported_version,
                api_keys=(ApiVersionV0(api_key=i16(18), min_version=i16(0), max_version=i16(1)),),
            )
        else:
            response = ApiVersionsResponseV1(
                error_code=ErrorCode.none,
                api_keys=(
                    ApiVersionV1(api_key=i16(18), min_version=i16(0), max_version=i16(1)),
                    ApiVersionV1(api_key=i16(10), min_version=i16(0), max_version=i16(2)),
                ),
                throttle_time=ZERO,
            )
        writer.write(encode_response(header.correlation_id, response))

    broker.on_request = old_broker
    conn = await connect(broker)
    try:
        assert broker.requests == [(18, 3), (18, 1)]
        assert conn.pick_version(10, 1, 6) == 2
    finally:
        await conn.close()


async def test_answers_out_of_order_reach_their_own_requests(broker: FakeBroker) -> None:
    async def slow_first(writer: asyncio.StreamWriter, header: Any, request: Any) -> None:
        if header.request_api_key == 18:
            await broker.default(writer, header, request)
            return
        delay = 0.3 if request.key == "group-1" else 0.0
        await broker.answer_find_coordinator(writer, header, request, delay)

    broker.on_request = slow_first
    conn = await connect(broker)
    try:
        done: list[str] = []

        async def ask(key: str) -> int:
            response = await conn.send(find(key))
            done.append(key)
            return int(response.node_id)

        nodes = await asyncio.gather(ask("group-1"), ask("group-2"), ask("group-3"))
        assert list(nodes) == [1, 2, 3]
        assert done[-1] == "group-1"  # answered last, yet matched to its request
    finally:
        await conn.close()


async def test_timeout_leaves_the_connection_usable(broker: FakeBroker) -> None:
    late: list[tuple[asyncio.StreamWriter, Any, Any]] = []

    async def hold_first(writer: asyncio.StreamWriter, header: Any, request: Any) -> None:
        if header.request_api_key == 10 and request.key == "group-7" and not late:
            late.append((writer, header, request))  # answered only after the next request
            return
        await broker.default(writer, header, request)

    broker.on_request = hold_first
    conn = await connect(broker, request_timeout_s=0.2)
    try:
        with pytest.raises(RequestTimeout, match="no answer"):
            await conn.send(find("group-7"))
        writer, header, request = late[0]
        await broker.answer_find_coordinator(writer, header, request)  # the late answer
        response = await conn.send(find("group-8"))
        assert int(response.node_id) == 8
        assert not conn.closed
    finally:
        await conn.close()


async def test_oversized_frame_fails_waiting_requests_and_closes(broker: FakeBroker) -> None:
    async def huge(writer: asyncio.StreamWriter, header: Any, request: Any) -> None:
        if header.request_api_key == 18:
            await broker.default(writer, header, request)
        else:
            writer.write(struct.pack(">ii", 10_000_000, header.correlation_id))

    broker.on_request = huge
    conn = await connect(broker, frame_bytes_max=1_000_000)
    try:
        with pytest.raises(ProtocolViolation, match="10000000 bytes"):
            await conn.send(find("group-1"))
        assert conn.closed
        with pytest.raises(ConnectionClosed):
            await conn.send(find("group-2"))
    finally:
        await conn.close()


async def test_response_that_does_not_decode_fails_its_request(broker: FakeBroker) -> None:
    async def truncated(writer: asyncio.StreamWriter, header: Any, request: Any) -> None:
        if header.request_api_key == 18:
            await broker.default(writer, header, request)
        else:  # a FindCoordinator answer cut after its throttle time
            writer.write(struct.pack(">iiBi", 9, header.correlation_id, 0, 0))

    broker.on_request = truncated
    conn = await connect(broker)
    try:
        with pytest.raises(ProtocolViolation, match="does not decode"):
            await conn.send(find("group-1"))
        assert conn.closed
    finally:
        await conn.close()


async def test_unknown_correlation_id_is_a_protocol_violation(broker: FakeBroker) -> None:
    async def wrong_id(writer: asyncio.StreamWriter, header: Any, request: Any) -> None:
        if header.request_api_key == 18:
            await broker.default(writer, header, request)
        else:
            header = type(header)(
                request_api_key=header.request_api_key,
                request_api_version=header.request_api_version,
                correlation_id=header.correlation_id + 1000,
                client_id=header.client_id,
            )
            await broker.answer_find_coordinator(writer, header, request)

    broker.on_request = wrong_id
    conn = await connect(broker)
    try:
        with pytest.raises(ProtocolViolation, match="unknown correlation id"):
            await conn.send(find("group-1"))
    finally:
        await conn.close()


async def test_peer_closing_fails_the_waiting_request(broker: FakeBroker) -> None:
    async def hang_up(writer: asyncio.StreamWriter, header: Any, request: Any) -> None:
        if header.request_api_key == 18:
            await broker.default(writer, header, request)
        else:
            writer.close()

    broker.on_request = hang_up
    conn = await connect(broker)
    try:
        with pytest.raises(ConnectionClosed, match="closed by"):
            await conn.send(find("group-1"))
    finally:
        await conn.close()


async def test_send_after_close_and_close_fails_waiters(broker: FakeBroker) -> None:
    async def never(writer: asyncio.StreamWriter, header: Any, request: Any) -> None:
        if header.request_api_key == 18:
            await broker.default(writer, header, request)

    broker.on_request = never
    conn = await connect(broker)
    waiting = asyncio.create_task(conn.send(find("group-1")))
    await asyncio.sleep(0.05)
    await conn.close()
    with pytest.raises(ConnectionClosed):
        await waiting
    with pytest.raises(ConnectionClosed):
        await conn.send(find("group-2"))


async def test_in_flight_requests_are_bounded(broker: FakeBroker) -> None:
    held: list[tuple[asyncio.StreamWriter, Any, Any]] = []

    async def hold(writer: asyncio.StreamWriter, header: Any, request: Any) -> None:
        if header.request_api_key == 18:
            await broker.default(writer, header, request)
        else:
            held.append((writer, header, request))

    broker.on_request = hold
    conn = await connect(broker, in_flight_max=2)
    try:
        tasks = [asyncio.create_task(conn.send(find(f"group-{i}"))) for i in range(5)]
        for _ in range(200):
            if len(held) == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert len(held) == 2  # the other three wait for a slot before they are written
        while not all(t.done() for t in tasks):
            while held:
                await broker.answer_find_coordinator(*held.pop(0))
            await asyncio.sleep(0.02)
        assert sorted(int(t.result().node_id) for t in tasks) == [0, 1, 2, 3, 4]
    finally:
        await conn.close()


async def test_refused_connect_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
        await KafkaConnection.open("127.0.0.1", port, connect_timeout_s=2)


async def test_a_listener_that_is_not_kafka_is_named_as_such() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ProtocolViolation, match="not a Kafka listener"):
            await KafkaConnection.open("127.0.0.1", port, request_timeout_s=5)
    finally:
        server.close()
        await server.wait_closed()
