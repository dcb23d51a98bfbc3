"""One asyncio connection to a Kafka broker (any broker, not only Shoal), on kio's codecs.

`KafkaConnection.open` connects with a timeout and negotiates versions with ApiVersions; `send`
writes a kio request dataclass and awaits the response with the same correlation id. Responses
may arrive in any order (a broker may answer a fast request before a slow one). Everything is
bounded: frame size, requests in flight, and the time of the connect and of each request.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from kio.index import KioIndexError, load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import keep_fields

_SIZE: Final = struct.Struct(">i")
_INT16: Final = struct.Struct(">h")
# The client side of ApiVersions: v3 carries our name; v0 is what a broker answers with when it
# does not know the version we sent (KIP-511).
_API_VERSIONS_MAX: Final = 3

DEFAULT_FRAME_BYTES_MAX: Final = 64 * 1024 * 1024
DEFAULT_IN_FLIGHT_MAX: Final = 32
# Correlation ids of requests that timed out: their late answers are dropped, anything else
# unknown is a broken stream.
_ABANDONED_MAX: Final = 1024

_Reader = Callable[[Any, int], tuple[Any, int]]


class ClientError(Exception):
    """Base of every error this client raises."""


class ConnectError(ClientError):
    """The TCP connection could not be made (refused, unreachable, timed out)."""


class ConnectionClosed(ClientError):
    """The connection ended while a request waited, or was used after close."""


class RequestTimeout(ClientError):
    """No response within the request timeout."""


class ProtocolViolation(ClientError):
    """The peer sent bytes that are not a valid response; the connection is closed."""


class UnsupportedApi(ClientError):
    """Broker and client share no version of an API."""


@dataclass(frozen=True, slots=True)
class VersionRange:
    min_version: int
    max_version: int


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Any]
    header_reader: _Reader
    body_reader: _Reader


_readers: dict[type[Any], _Reader] = {}


def _reader(cls: type[Any]) -> _Reader:
    read = _readers.get(cls)
    if read is None:
        read = entity_reader(cls)
        _readers[cls] = read
    return read


def encode_request(request: Any, correlation_id: int, client_id: str | None) -> bytes:
    """Size prefix + request header (v1 or v2, as kio says for the class) + body."""
    header_cls = request.__header_schema__
    fields: dict[str, Any] = {
        "request_api_key": request.__api_key__,
        "request_api_version": request.__version__,
        "correlation_id": correlation_id,
        "client_id": client_id,
    }
    buf = io.BytesIO()
    buf.write(b"\x00\x00\x00\x00")
    entity_writer(header_cls)(buf, header_cls(**keep_fields(header_cls, fields)))
    entity_writer(type(request))(buf, request)
    view = buf.getbuffer()
    _SIZE.pack_into(view, 0, len(view) - 4)
    del view
    return buf.getvalue()


class KafkaConnection:
    """A connection with version negotiation and correlation of pipelined requests."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        client_id: str,
        request_timeout_s: float,
        frame_bytes_max: int,
        in_flight_max: int,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.client_id = client_id
        self.request_timeout_s = request_timeout_s
        self.frame_bytes_max = frame_bytes_max
        self._slots = asyncio.Semaphore(in_flight_max)
        self._pending: dict[int, _Pending] = {}
        self._abandoned: OrderedDict[int, None] = OrderedDict()
        self._next_correlation = 1
        self._closed: BaseException | None = None
        self.versions: dict[int, VersionRange] = {}
        self._read_task = asyncio.create_task(self._read_loop())

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        client_id: str = "shoal-client",
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 30.0,
        frame_bytes_max: int = DEFAULT_FRAME_BYTES_MAX,
        in_flight_max: int = DEFAULT_IN_FLIGHT_MAX,
        negotiate: bool = True,
    ) -> KafkaConnection:
        """Connect and (unless `negotiate` is false) learn the broker's API versions."""
        try:
            async with asyncio.timeout(connect_timeout_s):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise ConnectError(f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConnectError(f"cannot connect to {host}:{port}: {reason}") from exc
        conn = cls(
            reader,
            writer,
            client_id=client_id,
            request_timeout_s=request_timeout_s,
            frame_bytes_max=frame_bytes_max,
            in_flight_max=in_flight_max,
        )
        if negotiate:
            try:
                await conn.negotiate()
            except ProtocolViolation as exc:
                await conn.close()
                raise ProtocolViolation(f"{host}:{port} is not a Kafka listener? {exc}") from exc
            except BaseException:
                await conn.close()
                raise
        return conn

    @property
    def peer(self) -> str:
        info = self._writer.get_extra_info("peername")
        return f"{info[0]}:{info[1]}" if info else "?"

    @property
    def closed(self) -> bool:
        return self._closed is not None

    # -- versions ----
    async def negotiate(self) -> dict[int, VersionRange]:
        """ApiVersions at the highest version both sides speak; fills `versions`."""
        from kio.schema.api_versions.v3.request import ApiVersionsRequest as V3

        from shoal import __version__

        response = await self.send(
            V3(client_software_name="shoal-client", client_software_version=__version__)
        )
        if int(response.error_code) == errors.UNSUPPORTED_VERSION:
            # The broker answered in v0 with its own range of ApiVersions; retry at its best
            # (v0-v2 requests have no fields).
            theirs = {int(k.api_key): int(k.max_version) for k in response.api_keys}
            version = min(theirs.get(ApiKey.API_VERSIONS, 0), _API_VERSIONS_MAX)
            if version >= _API_VERSIONS_MAX:
                raise ProtocolViolation("ApiVersions v3 refused by a broker that claims v3")
            response = await self.send(load_request_schema(ApiKey.API_VERSIONS, version)())
        if int(response.error_code) != errors.NONE:
            raise ProtocolViolation(
                f"ApiVersions failed: {errors.error_name(int(response.error_code))}"
            )
        self.versions = {
            int(k.api_key): VersionRange(int(k.min_version), int(k.max_version))
            for k in response.api_keys
        }
        return self.versions

    def pick_version(self, api_key: int, client_min: int, client_max: int) -> int:
        """The highest version in both the broker's range and [client_min, client_max]."""
        theirs = self.versions.get(api_key)
        if theirs is None:
            raise UnsupportedApi(f"broker {self.peer} does not serve API {api_key}")
        best = min(theirs.max_version, client_max)
        if best < max(theirs.min_version, client_min):
            raise UnsupportedApi(
                f"API {api_key}: broker {self.peer} serves v{theirs.min_version}-"
                f"{theirs.max_version}, this client v{client_min}-{client_max}"
            )
        return best

    # -- requests ----
    async def send(self, request: Any, timeout_s: float | None = None) -> Any:
        """Send a kio request dataclass; return the decoded response of the same version."""
        self._check_open()
        api_key, version = int(request.__api_key__), int(request.__version__)
        try:
            response_cls = load_response_schema(api_key, version)
        except KioIndexError as exc:
            raise UnsupportedApi(f"no response schema for API {api_key} v{version}") from exc
        header_cls = response_cls.__header_schema__
        if api_key == ApiKey.API_VERSIONS and version > 0:
            # Our ApiVersions may be answered in v0 (unsupported version): decode by error code.
            body_reader = _api_versions_reader(response_cls)
        else:
            body_reader = _reader(response_cls)
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        async with self._slots:
            self._check_open()
            correlation_id = self._next_correlation
            self._next_correlation = (self._next_correlation + 1) & 0x7FFFFFFF
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending[correlation_id] = _Pending(future, _reader(header_cls), body_reader)
            try:
                self._writer.write(encode_request(request, correlation_id, self.client_id))
                async with asyncio.timeout(timeout):
                    await self._drain_then(future)
                return future.result()
            except TimeoutError:
                if self._pending.pop(correlation_id, None) is not None:
                    self._abandon(correlation_id)
                raise RequestTimeout(
                    f"API {api_key} v{version} to {self.peer}: no answer in {timeout:.1f} s"
                ) from None
            except (ConnectionError, OSError) as exc:
                self._fail(ConnectionClosed(f"connection to {self.peer} failed: {exc}"))
                raise ConnectionClosed(f"connection to {self.peer} failed: {exc}") from exc
            finally:
                self._pending.pop(correlation_id, None)

    async def _drain_then(self, future: asyncio.Future[Any]) -> None:
        await self._writer.drain()
        await asyncio.shield(future)

    def _abandon(self, correlation_id: int) -> None:
        self._abandoned[correlation_id] = None
        while len(self._abandoned) > _ABANDONED_MAX:
            self._abandoned.popitem(last=False)

    def _check_open(self) -> None:
        if self._closed is not None:
            raise ConnectionClosed(f"connection closed: {self._closed}")

    async def _read_loop(self) -> None:
        try:
            while True:
                head = await self._reader.readexactly(4)
                (size,) = _SIZE.unpack(head)
                if size < 4 or size > self.frame_bytes_max:
                    raise ProtocolViolation(
                        f"response frame of {size} bytes (limit {self.frame_bytes_max})"
                    )
                frame = await self._reader.readexactly(size)
                (correlation_id,) = _SIZE.unpack_from(frame, 0)
                pending = self._pending.pop(correlation_id, None)
                if pending is None:
                    if correlation_id in self._abandoned:
                        del self._abandoned[correlation_id]  # late answer of a timed-out request
                        continue
                    raise ProtocolViolation(f"response for unknown correlation id {correlation_id}")
                if pending.future.done():
                    continue
                try:
                    _, offset = pending.header_reader(frame, 0)
                    response, _ = pending.body_reader(frame, offset)
                except Exception as exc:  # kio raises several types on bad bytes
                    bad = ProtocolViolation(f"response does not decode: {exc!r}")
                    pending.future.set_exception(bad)
                    raise bad from exc
                pending.future.set_result(response)
        except asyncio.IncompleteReadError:
            self._fail(ConnectionClosed(f"connection closed by {self.peer}"))
        except (ConnectionError, OSError) as exc:
            self._fail(ConnectionClosed(f"connection to {self.peer} failed: {exc}"))
        except ProtocolViolation as exc:
            self._fail(exc)
            self._writer.close()
        except Exception as exc:  # a bug here must not leave requests waiting for their timeout
            self._fail(ProtocolViolation(f"reading responses failed: {exc!r}"))
            self._writer.close()
        except asyncio.CancelledError:
            self._fail(ConnectionClosed("connection closed"))
            raise

    def _fail(self, exc: ClientError) -> None:
        if self._closed is None:
            self._closed = exc
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc)
        self._pending.clear()

    async def close(self) -> None:
        """Fail waiting requests with ConnectionClosed and close the socket."""
        self._fail(ConnectionClosed("connection closed"))
        self._read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._read_task
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()

    async def __aenter__(self) -> KafkaConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _api_versions_reader(response_cls: type[Any]) -> _Reader:
    """Reads an ApiVersions answer: as `response_cls`, or as v0 when it carries
    UNSUPPORTED_VERSION (brokers answer an unknown ApiVersions version in v0)."""
    v0 = load_response_schema(ApiKey.API_VERSIONS, 0)
    read_ours, read_v0 = _reader(response_cls), _reader(v0)

    def read(frame: Any, offset: int) -> tuple[Any, int]:
        (code,) = _INT16.unpack_from(frame, offset)
        if code == errors.UNSUPPORTED_VERSION:
            return read_v0(frame, offset)
        return read_ours(frame, offset)

    return read
