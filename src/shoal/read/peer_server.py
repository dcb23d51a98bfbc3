"""The agent-to-agent block endpoint: `POST /v1/blocks/read` on the agent HTTP port
(DESIGN.md §4 step 4-5).

A peer sends, in one request, every byte range it needs from blocks this agent owns. They are
served from this agent's block cache, which loads a missing block with one ranged GET shared by
every concurrent reader, local or remote; so a zone reads each block from the object store once.
Wire format: `shoal.read.peer_wire`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from shoal import metrics
from shoal.common.byte_budget import ByteBudget
from shoal.read import peer_wire
from shoal.read.block_cache import BlockSource, Chunk, spanned_bytes
from shoal.read.peer_wire import FileRanges, WireError

log = logging.getLogger(__name__)

# Small pieces are gathered into writes of about this size: one write per range would cost an
# await each, one write of everything a copy of up to 64 MiB.
_WRITE_BYTES = 256 * 1024
# Files of one request read at once: a request may name 2,000 files, and the blocks being
# loaded for them are held outside the cache's budget until they land.
FILES_IN_FLIGHT_MAX = 16


class PeerServer:
    def __init__(
        self,
        cache: BlockSource,
        az: str,
        *,
        read_timeout_s: float = 10.0,
        bytes_in_flight_max: int = 256 * 1024 * 1024,
        block_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        """`read_timeout_s` bounds the block loads of one request (ranges not loaded by then
        are answered with an error marker); `bytes_in_flight_max` bounds what all requests
        being answered hold at once, counted in whole `block_bytes` blocks (a request waits
        for room)."""
        self._cache = cache
        self._block_bytes = block_bytes
        self._az = az
        self._timeout_s = read_timeout_s
        self._budget = ByteBudget(bytes_in_flight_max)
        self.requests = 0
        self.bytes_sent = 0
        self.cross_zone_bytes = 0
        self.bad_requests = 0
        self.read_errors = 0
        self.abandoned = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.post(peer_wire.PATH, self.handle)]

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "bytes_sent": self.bytes_sent,
            "cross_zone_bytes": self.cross_zone_bytes,
            "bad_requests": self.bad_requests,
            "read_errors": self.read_errors,
            "abandoned": self.abandoned,
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
            files = peer_wire.decode_request(body)
        except (WireError, web.HTTPRequestEntityTooLarge) as exc:
            self.bad_requests += 1
            return web.Response(status=400, text=f"bad block-read request: {exc}\n")
        self.requests += 1
        metrics.PEER_REQUESTS.labels(direction="received").inc()
        # Blocks, not range bytes: 20,000 one-byte ranges in 20,000 blocks hold 78 GiB.
        total = spanned_bytes(
            self._block_bytes,
            ((f.key, f.file_size, pos, n) for f in files for pos, n in f.ranges),
        )
        await self._budget.acquire(total)
        try:
            deadline = asyncio.get_running_loop().time() + self._timeout_s
            room = asyncio.Semaphore(FILES_IN_FLIGHT_MAX)
            results = await asyncio.gather(*(self._read_file(f, deadline, room) for f in files))
            return await self._respond(request, files, results)
        finally:
            self._budget.release(total)

    async def _read_file(
        self, f: FileRanges, deadline: float, room: asyncio.Semaphore
    ) -> Sequence[Chunk] | None:
        try:
            async with asyncio.timeout_at(deadline), room:
                return await self._cache.read_ranges(f.key, f.file_size, f.ranges)
        except Exception as exc:
            self.read_errors += 1
            log.warning("serving %d ranges of %s to a peer failed: %r", len(f.ranges), f.key, exc)
            return None

    async def _respond(
        self,
        request: web.Request,
        files: list[FileRanges],
        results: list[Sequence[Chunk] | None],
    ) -> web.StreamResponse:
        length = 0
        sent = 0
        for f, chunks in zip(files, results, strict=True):
            length += peer_wire.LEN_SIZE * len(f.ranges)
            if chunks is not None:
                sent += sum(len(c) for c in chunks)
        response = web.StreamResponse(headers={"Content-Type": peer_wire.CONTENT_TYPE})
        response.content_length = length + sent
        try:
            await response.prepare(request)
            pending: list[Chunk] = []
            pending_bytes = 0
            err = peer_wire.length_prefix(peer_wire.ERR_READ)
            for f, chunks in zip(files, results, strict=True):
                if chunks is None:
                    pending.extend(err for _ in f.ranges)
                    pending_bytes += len(err) * len(f.ranges)
                    continue
                for chunk in chunks:
                    pending.append(peer_wire.length_prefix(len(chunk)))
                    if len(chunk) >= _WRITE_BYTES:
                        await response.write(b"".join(pending))
                        await response.write(chunk)
                        pending, pending_bytes = [], 0
                        continue
                    pending.append(chunk)
                    pending_bytes += len(chunk) + peer_wire.LEN_SIZE
                    if pending_bytes >= _WRITE_BYTES:
                        await response.write(b"".join(pending))
                        pending, pending_bytes = [], 0
            if pending:
                await response.write(b"".join(pending))
            await response.write_eof()
        except ConnectionError as exc:
            # The requester gave up (its timeout is short) and reads from the store itself.
            self.abandoned += 1
            log.debug("peer went away before its answer was sent: %r", exc)
            return response
        self.bytes_sent += sent
        metrics.PEER_BYTES.labels(direction="sent").inc(sent)
        requester_az = request.headers.get(peer_wire.AZ_HEADER, "")
        cross = bool(requester_az) and requester_az != self._az
        if cross:
            # Same-zone peer bytes are not counted here: the fetch that asked for them counts
            # them once, when they reach its client.
            self.cross_zone_bytes += sent
            metrics.FETCH_BYTES.labels(cross_zone="true").inc(sent)
        return response
