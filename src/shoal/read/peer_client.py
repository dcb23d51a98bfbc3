"""The requester side of agent-to-agent block reads: one HTTP request per owner per fetch,
carrying every range needed from that owner (split only past the per-request limits).

Failures are reported as `PeerError` with a reason; the ring source then reads those ranges
from the object store itself. The timeout is short on purpose: a dead or stuck owner must cost
a fetch little more than `timeout_ms` before it falls back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from shoal import metrics
from shoal.meta.agent_store import AgentInfo
from shoal.read import peer_wire
from shoal.read.block_cache import Chunk
from shoal.read.peer_wire import FileRanges, WireError


class PeerError(Exception):
    """A peer could not answer; `reason` is one of timeout, unreachable, error."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class PeerClient:
    def __init__(
        self,
        agent_id: str,
        az: str,
        *,
        timeout_ms: int = 2000,
        connections_max: int = 256,
        connections_per_peer_max: int = 16,
        request_bytes_max: int = peer_wire.REQUEST_BYTES_MAX,
    ) -> None:
        self._agent_id = agent_id
        self._az = az
        self._timeout_s = timeout_ms / 1000.0
        self._connections_max = connections_max
        self._per_peer_max = connections_per_peer_max
        self._request_bytes_max = request_bytes_max
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0
        self.bytes_received = 0
        self.errors: dict[str, int] = {"timeout": 0, "unreachable": 0, "error": 0}

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "bytes_received": self.bytes_received,
            "errors": dict(self.errors),
            "timeout_ms": int(self._timeout_s * 1000),
        }

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a session belongs to the running event loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._connections_max,
                limit_per_host=self._per_peer_max,
                keepalive_timeout=30.0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                headers={
                    peer_wire.AZ_HEADER: self._az,
                    peer_wire.AGENT_HEADER: self._agent_id,
                    "Content-Type": peer_wire.CONTENT_TYPE,
                },
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def read(self, peer: AgentInfo, files: Sequence[FileRanges]) -> list[list[Chunk | None]]:
        """Per file, per range: the bytes (views into the response body), or None where the
        peer answered with an error marker. Raises PeerError when the peer did not answer."""
        parts = peer_wire.split_requests(files, self._request_bytes_max)
        if len(parts) == 1:
            return await self._request(peer, parts[0])
        answers = await asyncio.gather(*(self._request(peer, p) for p in parts))
        # Splitting keeps file order and may cut one file into consecutive pieces: rejoin.
        out: list[list[Chunk | None]] = []
        flat = [a for ans in answers for a in ans]
        i = 0
        for f in files:
            got: list[Chunk | None] = []
            while len(got) < len(f.ranges):
                got.extend(flat[i])
                i += 1
            out.append(got)
        return out

    async def _request(self, peer: AgentInfo, files: list[FileRanges]) -> list[list[Chunk | None]]:
        body = peer_wire.encode_request(files)
        expected_max = sum(f.byte_count() + peer_wire.LEN_SIZE * len(f.ranges) for f in files)
        url = peer.http_base + peer_wire.PATH
        self.requests += 1
        metrics.PEER_REQUESTS.labels(direction="sent").inc()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._client().post(url, data=body) as resp:
                    if resp.status != 200:
                        text = (await resp.content.read(500)).decode(errors="replace")
                        raise PeerError("error", f"{url} answered {resp.status}: {text}")
                    length = resp.content_length
                    if length is None or length > expected_max:
                        raise PeerError("error", f"{url} sent {length} bytes for {expected_max}")
                    data = await resp.read()
        except PeerError:
            self.errors["error"] += 1
            raise
        except TimeoutError:
            self.errors["timeout"] += 1
            raise PeerError("timeout", f"{url} did not answer in {self._timeout_s}s") from None
        except aiohttp.ClientConnectorError as exc:
            self.errors["unreachable"] += 1
            raise PeerError("unreachable", f"{url}: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            self.errors["error"] += 1
            raise PeerError("error", f"{url}: {exc!r}") from None
        metrics.PEER_LATENCY.observe(time.perf_counter() - started)
        try:
            chunks = peer_wire.decode_response(data, files)
        except WireError as exc:
            self.errors["error"] += 1
            raise PeerError("error", f"{url}: {exc}") from None
        received = sum(len(c) for file_chunks in chunks for c in file_chunks if c is not None)
        self.bytes_received += received
        metrics.PEER_BYTES.labels(direction="received").inc(received)
        return chunks
