"""A minimal raw-socket Kafka client for tests that send malformed or hand-made requests."""

from __future__ import annotations

import io
import socket
import struct
from typing import Any

from kio.index import load_response_schema
from kio.serial import entity_reader, entity_writer

from shoal.protocol.messages import keep_fields


class RawConnection:
    def __init__(
        self, bootstrap: str, timeout_s: float = 10.0, source_ip: str | None = None
    ) -> None:
        host, port = bootstrap.rsplit(":", 1)
        source = None if source_ip is None else (source_ip, 0)
        self.sock = socket.create_connection(
            (host, int(port)), timeout=timeout_s, source_address=source
        )
        self._correlation = 0

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request_bytes(self, request: Any, client_id: str = "raw-test") -> tuple[int, bytes]:
        self._correlation += 1
        header_cls = request.__header_schema__
        buf = io.BytesIO()
        kwargs: dict[str, Any] = {
            "request_api_key": request.__api_key__,
            "request_api_version": request.__version__,
            "correlation_id": self._correlation,
            "client_id": client_id,
        }
        entity_writer(header_cls)(buf, header_cls(**keep_fields(header_cls, kwargs)))
        entity_writer(type(request))(buf, request)
        body = buf.getvalue()
        return self._correlation, struct.pack(">i", len(body)) + body

    def send(self, request: Any) -> int:
        correlation, frame = self.request_bytes(request)
        self.sock.sendall(frame)
        return correlation

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._read_exact(4))[0]
        return self._read_exact(size)

    def call(self, request: Any) -> Any:
        return self.read_response(request, self.send(request))

    def read_response(self, request: Any, correlation: int) -> Any:
        """The next response, decoded as the answer to `request` sent with `correlation`."""
        frame = self.read_frame()
        cls = load_response_schema(request.__api_key__, request.__version__)
        header, offset = entity_reader(cls.__header_schema__)(frame, 0)
        assert header.correlation_id == correlation
        response, _ = entity_reader(cls)(frame, offset)
        return response

    def is_closed_by_peer(self, timeout_s: float = 5.0) -> bool:
        self.sock.settimeout(timeout_s)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def _read_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("closed by peer")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)


def fetch_v12(
    topic: str,
    offsets: dict[int, int],
    *,
    max_bytes: int,
    partition_max_bytes: int,
    max_wait_ms: int = 0,
) -> Any:
    """A consumer's Fetch v12 (no session, no rack) of `topic` from `offsets` (partition ->
    fetch offset)."""
    import datetime

    from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
    from kio.schema.types import BrokerId, TopicName
    from kio.static.primitive import i32, i64

    return FetchRequest(
        cluster_id=None,
        replica_id=BrokerId(-1),
        max_wait=datetime.timedelta(milliseconds=max_wait_ms),  # type: ignore[arg-type]
        min_bytes=i32(1),
        max_bytes=i32(max_bytes),
        isolation_level=0,  # type: ignore[arg-type]
        session_id=i32(0),
        session_epoch=i32(-1),
        topics=(
            FetchTopic(
                topic=TopicName(topic),
                partitions=tuple(
                    FetchPartition(
                        partition=i32(p),
                        current_leader_epoch=i32(-1),
                        fetch_offset=i64(offset),
                        last_fetched_epoch=i32(-1),
                        log_start_offset=i64(-1),
                        partition_max_bytes=i32(partition_max_bytes),
                    )
                    for p, offset in offsets.items()
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="",
    )
