"""The Kafka connection engine: framing, limits, per-connection ordering and dispatch.

Each connection reads frames, dispatches each request as its own task (so a long-polling Fetch
does not block a Produce behind it on another connection, and a pipelining client gets
concurrency), and writes responses strictly in request order as Kafka requires. At most
`connection_inflight_max` requests per connection are in flight; beyond that the engine stops
reading from the socket, which pushes back on the client instead of growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shoal import metrics
from shoal.common.byte_budget import ByteBudget
from shoal.handlers.api_versions import api_versions_response
from shoal.handlers.base import REGISTRY, ApiSpec, CloseConnection, RequestContext
from shoal.handlers.services import Services
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.framing import (
    decode_request,
    encode_response,
    frame_prefix,
    response_header_flexible,
)
from shoal.server.frame_stream import FrameStream

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
_HEADER = struct.Struct(">hhi")
MIN_FRAME_BYTES = 8
# Frame bodies larger than this are read, and budgeted, in pieces of this size as they arrive.
BODY_PIECE_BYTES = 4 * 1024 * 1024
JOIN_BELOW_BYTES = 256 * 1024
# One connection holds at most this fraction (1/N) of the request budget.
REQUEST_SHARE_DIVISOR = 4
# How long a Fetch waits for room in the response budget before it answers without data.
RESPONSE_HOLD_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class _Body:
    frame: bytes | memoryview
    held: _Held


class ConnectionClosed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KafkaServer:
    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._settings = svc.settings
        self._server: asyncio.Server | None = None
        self._budget = ByteBudget(svc.settings.requests_bytes_max)
        self._small = ByteBudget(svc.settings.small_requests_bytes_max)
        self._responses = ByteBudget(svc.settings.responses_bytes_max)
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._per_ip: dict[str, int] = {}

    def status(self) -> dict[str, list[int]]:
        """The `apis` section of `/v1/status`: each API served, with its lowest and highest
        version (the registry's, as ApiVersions advertises them)."""
        return {spec.name: [spec.min_version, spec.max_version] for spec in REGISTRY.values()}

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: FrameStream(self._on_connection),
            self._settings.kafka_host,
            self._settings.kafka_port,
            reuse_address=True,
            backlog=1024,
        )

    async def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close_connections(self, grace_s: float = 5.0) -> None:
        """Stop reading new requests, let answers already in flight go out, then close."""
        for conn in self._connections.values():
            conn.begin_shutdown()
        tasks = list(self._connections)
        if tasks:
            _, still = await asyncio.wait(tasks, timeout=grace_s)
            for t in still:
                t.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()

    async def _on_connection(self, stream: FrameStream) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = stream.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        peer_s = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        refused = None
        if len(self._connections) >= self._settings.connections_max:
            refused = "connections_max"
        elif self._per_ip.get(ip, 0) >= self._settings.connections_per_ip_max:
            refused = "connections_per_ip_max"
        if refused is not None:
            # As Kafka does over max.connections(.per.ip): close before reading anything.
            metrics.CONNECTIONS_CLOSED.labels(reason=refused).inc()
            stream.close()
            return
        budgets = _Budgets(self._budget, self._small, self._responses)
        conn = _Connection(self._svc, budgets, stream, stream, peer_s)
        self._connections[task] = conn
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        metrics.CONNECTIONS.inc()
        try:
            await conn.run()
        except asyncio.CancelledError:
            pass  # shutdown after the grace period: nothing more to say to this client
        finally:
            metrics.CONNECTIONS.dec()
            self._connections.pop(task, None)
            left = self._per_ip.pop(ip, 1) - 1
            if left > 0:
                self._per_ip[ip] = left


@dataclass(frozen=True, slots=True)
class _Budgets:
    """Request bytes held by all connections: large frames share `large`; frames up to
    `small_frame_bytes_max` draw on `small`, so a Heartbeat never waits behind large ones.
    `responses` counts what Fetch responses load and may pin (whole blocks) until written."""

    large: ByteBudget
    small: ByteBudget
    responses: ByteBudget


class _ResponseHold:
    """The response bytes one request holds (`RequestContext.hold_response_bytes`), released
    once the response is written or the connection ends. Holding is idempotent up to the
    largest amount asked for: a long-polling Fetch that loads again holds no more than the
    largest of its loads."""

    __slots__ = ("_budget", "_closed", "_held")

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self._held = 0
        self._closed = False

    async def hold(self, size: int) -> bool:
        if self._closed:
            return False
        if size <= self._held:
            return True
        try:
            async with asyncio.timeout(RESPONSE_HOLD_WAIT_S):
                await self._budget.acquire(size - self._held)
        except TimeoutError:
            return False
        if self._closed:  # released while waiting: hand it straight back
            self._budget.release(size - self._held)
            return False
        self._held = size
        return True

    def release(self) -> None:
        self._closed = True
        held, self._held = self._held, 0
        if held:
            self._budget.release(held)


class _Held:
    """One request's bytes in its budgets, released once: when it is answered, or earlier by a
    handler whose data another budget counts from then on (Produce, in the write buffer)."""

    __slots__ = ("_budgets", "_size")

    def __init__(self, budgets: tuple[ByteBudget, ...], size: int) -> None:
        self._budgets = budgets
        self._size = size

    def release(self, *_: object) -> None:
        budgets, self._budgets = self._budgets, ()
        for budget in budgets:
            budget.release(self._size)


class _Connection:
    def __init__(
        self,
        svc: Services,
        budgets: _Budgets,
        reader: FrameStream,
        writer: FrameStream,
        peer: str,
    ) -> None:
        self._svc = svc
        self._budgets = budgets
        self._reader = reader
        self._writer = writer
        self._peer = peer
        settings = svc.settings
        self._frame_max = settings.frame_bytes_max
        self._small_max = settings.small_frame_bytes_max
        self._body_timeout_s = settings.frame_body_timeout_ms / 1000.0
        self._write_timeout_s = settings.response_write_timeout_ms / 1000.0
        self._write_end = ""  # why the write loop ended early, if it did
        self._idle_s = settings.connection_idle_ms / 1000.0
        self._pending: asyncio.Queue[_Pending | None] = asyncio.Queue(
            maxsize=max(1, settings.connection_inflight_max)
        )
        self._client_id: str | None = None
        self._shutting_down = False
        self._write_turn = asyncio.Lock()
        # This connection's share of the large-request budget (one frame larger than the
        # share is still admitted when the connection holds nothing else).
        self._share = ByteBudget(max(1, settings.requests_bytes_max // REQUEST_SHARE_DIVISOR))

    def begin_shutdown(self) -> None:
        self._shutting_down = True
        self._reader.feed_eof()

    async def run(self) -> None:
        write_loop = asyncio.create_task(self._write_loop())
        read_loop = asyncio.create_task(self._read_loop())
        reason = "eof"
        try:
            await asyncio.wait({read_loop, write_loop}, return_when=asyncio.FIRST_COMPLETED)
            if not read_loop.done():
                # The write loop ended first (the client does not read its answers, the
                # socket broke, or a handler failed): nothing more can be answered in order,
                # so stop reading too; the read loop may be waiting for room in the queue
                # that nobody empties any more.
                reason = self._write_end or "write_error"
                read_loop.cancel()
                await asyncio.wait({read_loop})
            else:
                reason = self._read_end(read_loop.exception())
        finally:
            read_loop.cancel()
            # Let responses already in flight go out, then close.
            with contextlib.suppress(asyncio.QueueFull):
                self._pending.put_nowait(None)
            if reason in ("eof", "timeout") or write_loop.done():
                write_loop.cancel()
            else:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5.0):
                        await asyncio.shield(write_loop)
                write_loop.cancel()
            with contextlib.suppress(BaseException):
                await write_loop
            self._drain_pending()
            metrics.CONNECTIONS_CLOSED.labels(reason=reason).inc()
            self._writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._writer.wait_closed()

    def _read_end(self, exc: BaseException | None) -> str:
        """Why the read loop ended, as the closed-connections metric names it."""
        if isinstance(exc, ConnectionClosed):
            return exc.reason
        if isinstance(exc, asyncio.IncompleteReadError | ConnectionError):
            return "shutdown" if self._shutting_down else "eof"
        if isinstance(exc, TimeoutError):
            return "timeout"
        if exc is not None:
            log.error("connection from %s: read loop failed", self._peer, exc_info=exc)
        return "error"

    def _drain_pending(self) -> None:
        while not self._pending.empty():
            entry = self._pending.get_nowait()
            if entry is not None:
                entry[0].cancel()
                entry[1].release()

    async def _read_loop(self) -> None:
        reader = self._reader
        while True:
            # asyncio.timeout rather than wait_for: no task per read on 3.11, and a cancel
            # is never swallowed (3.11's wait_for can lose one that races a completion).
            async with asyncio.timeout(self._idle_s):
                head = await reader.readexactly(4)
            (size,) = _SIZE.unpack(head)
            if size < MIN_FRAME_BYTES or size > self._frame_max:
                # Kafka closes without reading on an invalid size; never allocate for it.
                raise ConnectionClosed("frame_size")
            # Small frames draw on their own reserve; large ones on this connection's share of
            # the request budget first, so no one connection can hold all of it.
            budgets = (
                (self._budgets.small,)
                if size <= self._small_max
                else (self._share, self._budgets.large)
            )
            body = await self._read_body(budgets, size)
            hold = _ResponseHold(self._budgets.responses)
            try:
                ctx, spec, request = self._parse(body.frame, body.held.release, hold.hold)
            except BaseException:
                body.held.release()
                raise
            if spec is None:
                body.held.release()
                await self._pending.put((self._done(request), hold))
                continue
            task = asyncio.create_task(self._dispatch(spec, ctx, request))
            # A callback, not a finally: a task cancelled before it ever ran skips its body.
            task.add_done_callback(body.held.release)
            await self._pending.put((task, hold))

    async def _read_body(self, budgets: tuple[ByteBudget, ...], size: int) -> _Body:
        """Read a frame body, holding its size in each of `budgets`, in order. A body larger
        than one piece is read (and its budget taken) piece by piece as it arrives, so
        announcing a large frame and sending it slowly holds one piece, not the announced
        size."""
        pieces: list[bytes | memoryview] = []
        taken = 0
        got: list[ByteBudget] = []  # budgets holding the piece being taken
        try:
            while taken < size:
                n = min(BODY_PIECE_BYTES, size - taken)
                for budget in budgets:
                    await budget.acquire(n)
                    got.append(budget)
                got.clear()
                taken += n
                # Each piece must arrive in time; a trickling body is dropped with its
                # connection after one piece's timeout, holding at most one piece meanwhile.
                async with asyncio.timeout(self._body_timeout_s):
                    pieces.append(await self._reader.readexactly(n))
        except BaseException:
            for budget in budgets:
                budget.release(taken)
            for budget in got:
                budget.release(n)
            raise
        frame = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        return _Body(frame, _Held(budgets, size))

    def _parse(
        self,
        frame: bytes | memoryview,
        release: Callable[[], None],
        hold: Callable[[int], Awaitable[bool]],
    ) -> tuple[RequestContext, ApiSpec | None, Any]:
        """Decode one frame body. Spec None: the request is answered at once with the frame
        returned in its place (ApiVersions at a version not served, KIP-511)."""
        api_key, version, correlation_id = _HEADER.unpack_from(frame)
        ctx = RequestContext(
            api_key, version, correlation_id, self._client_id, self._peer, self._write_turn,
            release, hold,
        )  # fmt: skip
        spec = REGISTRY.get(api_key)
        if spec is None:
            raise ConnectionClosed("unknown_api")
        if not spec.min_version <= version <= spec.max_version:
            if api_key != ApiKey.API_VERSIONS:
                raise ConnectionClosed("unsupported_version")
            # KIP-511: answer v0 with the supported ranges so the client can retry.
            answer = api_versions_response(0, errors.UNSUPPORTED_VERSION)
            return ctx, None, encode_response(correlation_id, answer)
        try:
            header, request = decode_request(frame)
        except Exception as exc:
            log.debug("malformed request from %s: %r", self._peer, exc)
            raise ConnectionClosed("malformed") from None
        client_id = getattr(header, "client_id", None)
        if client_id is not None and client_id != self._client_id:
            self._client_id = client_id
            ctx = RequestContext(
                api_key, version, correlation_id, client_id, self._peer, self._write_turn,
                release, hold,
            )  # fmt: skip
        return ctx, spec, request

    @staticmethod
    def _done(frame: bytes) -> asyncio.Task[list[bytes] | None]:
        async def ready() -> list[bytes] | None:
            return [frame]

        return asyncio.create_task(ready())

    async def _dispatch(
        self, spec: ApiSpec, ctx: RequestContext, request: Any
    ) -> list[Any] | None:
        started = time.perf_counter()
        metrics.REQUESTS.labels(api=spec.name).inc()
        try:
            result = await spec.handler(self._svc, ctx, request)
        except CloseConnection as close:
            log.debug("closing %s after %s: %s", self._peer, spec.name, close.reason)
            raise
        except Exception:
            metrics.REQUEST_ERRORS.labels(api=spec.name).inc()
            log.exception("%s v%d from %s failed", spec.name, ctx.api_version, self._peer)
            raise
        finally:
            metrics.REQUEST_LATENCY.labels(api=spec.name).observe(time.perf_counter() - started)
        if result is None:
            return None
        if isinstance(result, bytes | bytearray | memoryview):
            flexible = response_header_flexible(ctx.api_key, ctx.api_version)
            return [frame_prefix(ctx.correlation_id, flexible, len(result)), bytes(result)]
        if isinstance(result, list):
            # A body in pieces (Fetch): record bytes stay views of the block cache. Small
            # bodies are joined, since one write of a few KiB beats many tiny ones.
            size = sum(len(part) for part in result)
            flexible = response_header_flexible(ctx.api_key, ctx.api_version)
            prefix = frame_prefix(ctx.correlation_id, flexible, size)
            if size < JOIN_BELOW_BYTES:
                return [prefix + b"".join(result)]
            return [prefix, *result]
        return [encode_response(ctx.correlation_id, result)]

    async def _write_loop(self) -> None:
        writer = self._writer
        while True:
            entry = await self._pending.get()
            if entry is None:
                return
            task, hold = entry
            try:
                if not await self._write_one(writer, task):
                    return
            finally:
                # Written (or never to be): what it loaded no longer counts.
                hold.release()

    async def _write_one(self, writer: FrameStream, task: asyncio.Task[list[bytes] | None]) -> bool:
        """Write one response; False when the connection can answer no more."""
        try:
            parts = await task
        except asyncio.CancelledError:
            raise
        except Exception:
            # A failed handler cannot be answered in order: close like Kafka would on an
            # unexpected server error, so the client retries on a fresh connection.
            self._write_end = "handler_error"
            writer.close()
            return False
        if parts is None:
            return True
        writer.writelines(parts)
        try:
            async with asyncio.timeout(self._write_timeout_s):
                await writer.drain()
        except TimeoutError:
            self._write_end = "write_timeout"
            writer.close()
            return False
        except ConnectionError:
            self._write_end = "write_error"
            return False
        return True


# One pipelined request: its answer to come, and the response bytes it holds.
_Pending = tuple[asyncio.Task[list[bytes] | None], _ResponseHold]
