"""The ring-routed `BlockSource`: the "distributed mmap" of one zone (DESIGN.md §4 steps 3-5, 7).

Every `(file, block)` has one owner among the live agents of this agent's zone (and agent
group): rendezvous hashing over their agent ids. A read is split at block boundaries; pieces
this agent owns come from its own block cache, the others from their owners, one request per
owner for the whole fetch. Each owner loads a block with one GET shared by all readers, so the
zone as a whole reads each block from the object store about once.

Fallback: when an owner does not answer within the peer timeout (or answers an error marker),
the pieces it should have served are read from the object store directly (one ranged GET per
block touched, exactly the bytes needed, not cached) and counted in
`shoal_peer_fallbacks_total`. An owner that timed out or refused a connection is skipped for
`suspect_s`, so that a dead agent costs each fetch a GET instead of a timeout until its heartbeat
expires and it leaves the ring.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shoal import metrics
from shoal.meta.agent_store import AgentInfo
from shoal.read.block_cache import BlockSource, Chunk, RangeReader
from shoal.read.peer_client import PeerClient, PeerError
from shoal.read.peer_wire import FileRanges, check_range
from shoal.read.ring import Ring, block_key


@dataclass(slots=True)
class _Piece:
    """Part of one requested range that lies in blocks of one owner."""

    file: int  # index into the request list
    range: int  # index into that file's ranges
    slot: int  # index among the range's pieces
    pos: int
    length: int


class ZoneView(Protocol):
    """The part of the cluster view the ring needs: this agent and the live agents of a zone.

    Declared here, not imported from `cluster/`, because the read path sits below the cluster
    layer; the cluster's view satisfies it structurally.
    """

    @property
    def me(self) -> AgentInfo: ...

    def in_zone(self, az: str) -> list[AgentInfo]: ...


class RingBlockSource:
    def __init__(
        self,
        view: ZoneView,
        local: BlockSource,
        peers: PeerClient,
        store: RangeReader,
        block_bytes: int,
        *,
        fallback_reads_in_flight_max: int = 16,
        suspect_s: float = 1.0,
    ) -> None:
        if block_bytes <= 0:
            raise ValueError("block_bytes must be positive")
        self._view = view
        self._local = local
        self._peers = peers
        self._store = store
        self.block_bytes = block_bytes
        self._fallback_sem = asyncio.Semaphore(fallback_reads_in_flight_max)
        self._suspect_s = suspect_s
        self._suspect_until: dict[str, float] = {}
        self._ring_ids: tuple[str, ...] | None = None
        self._ring = Ring([])
        self._agents: dict[str, AgentInfo] = {}
        self._me_id = ""
        self.ring_changes = 0
        self.local_pieces = 0
        self.remote_pieces = 0
        self.fallbacks: dict[str, int] = {}
        self.fallback_reads = 0

    # -- public API ----------------------------------------------------------------------------
    async def read_ranges(
        self, key: str, file_size: int, ranges: list[tuple[int, int]]
    ) -> list[Chunk]:
        (result,) = await self.read_files([(key, file_size, ranges)])
        if isinstance(result, Exception):
            raise result
        return result

    async def read_files(
        self, requests: Sequence[tuple[str, int, list[tuple[int, int]]]]
    ) -> list[list[Chunk] | Exception]:
        """Bytes of each file's ranges, in order; every owner is asked once for all of them.

        A file whose bytes could not be read gets its exception in place of its chunks, so
        that one bad file fails only the partitions that need it."""
        ring, me, agents = self._current_ring()
        results: list[list[Chunk] | Exception | None] = [None] * len(requests)
        if len(ring) <= 1:
            await asyncio.gather(
                *(self._read_local_whole(i, r, results) for i, r in enumerate(requests))
            )
            return _finished(results)
        # slots[file][range] = the range's pieces in order, filled as they arrive
        slots: list[list[list[Chunk | None]]] = []
        by_owner: dict[str, dict[int, list[_Piece]]] = {}
        for fi, (key, file_size, ranges) in enumerate(requests):
            file_slots: list[list[Chunk | None]] = []
            slots.append(file_slots)
            try:
                for ri, (pos, length) in enumerate(ranges):
                    check_range(file_size, pos, length)
                    file_slots.append(self._split(ring, fi, ri, key, pos, length, by_owner))
            except ValueError as exc:
                results[fi] = exc
        fallback: list[tuple[_Piece, str]] = []
        jobs: list[Coroutine[Any, Any, None]] = []
        for owner, files in by_owner.items():
            if owner == me:
                jobs.extend(
                    self._read_local(fi, p, requests, slots, results) for fi, p in files.items()
                )
            else:
                jobs.append(self._read_remote(agents[owner], files, requests, slots, fallback))
        await asyncio.gather(*jobs)
        if fallback:
            await self._read_fallback(fallback, requests, slots, results)
        for fi, file_slots in enumerate(slots):
            if results[fi] is not None:
                continue
            out: list[Chunk] = []
            for pieces in file_slots:
                if len(pieces) == 1:
                    assert pieces[0] is not None
                    out.append(pieces[0])
                else:
                    out.append(b"".join(p for p in pieces if p is not None))
            results[fi] = out
        return _finished(results)

    def owner(self, key: str, block_index: int) -> AgentInfo:
        """The agent that owns block `block_index` of object `key` in this zone."""
        ring, _, agents = self._current_ring()
        return agents[ring.owner(block_key(key, block_index))]

    def members(self) -> list[str]:
        return list(self._current_ring()[0].members)

    def stats(self) -> dict[str, Any]:
        ring, me, _ = self._current_ring()
        return {
            "ring_members": list(ring.members),
            "me": me,
            "ring_changes": self.ring_changes,
            "local_pieces": self.local_pieces,
            "remote_pieces": self.remote_pieces,
            "fallbacks": dict(self.fallbacks),
            "fallback_reads": self.fallback_reads,
            "client": self._peers.stats(),
        }

    # -- routing -------------------------------------------------------------------------------
    def _current_ring(self) -> tuple[Ring, str, dict[str, AgentInfo]]:
        """The ring of this agent's zone, rebuilt only when its members change."""
        me = self._view.me
        agents = self._view.in_zone(me.az)
        ids = tuple(a.agent_id for a in agents)
        if ids != self._ring_ids or me.agent_id != self._me_id:
            by_id = {a.agent_id: a for a in agents}
            # Always a member of its own ring, even before the view lists it as live.
            by_id.setdefault(me.agent_id, me)
            self._ring = Ring(list(by_id))
            self._agents = by_id
            self._ring_ids = ids
            self._me_id = me.agent_id
            self.ring_changes += 1
        # The dict is replaced, never changed, so callers may keep it across awaits.
        return self._ring, self._me_id, self._agents

    def _split(
        self,
        ring: Ring,
        fi: int,
        ri: int,
        key: str,
        pos: int,
        length: int,
        by_owner: dict[str, dict[int, list[_Piece]]],
    ) -> list[Chunk | None]:
        """Cut one range at block boundaries and file each piece under its block's owner;
        adjacent blocks with the same owner stay one piece."""
        if length == 0:
            return [b""]
        bb = self.block_bytes
        end = pos + length
        slots: list[Chunk | None] = []
        last_owner = ""
        last: _Piece | None = None
        at = pos
        while at < end:
            index = at // bb
            stop = min(end, (index + 1) * bb)
            owner = ring.owner(block_key(key, index))
            if last is not None and owner == last_owner:
                last.length += stop - at
            else:
                last = _Piece(fi, ri, len(slots), at, stop - at)
                last_owner = owner
                slots.append(None)
                by_owner.setdefault(owner, {}).setdefault(fi, []).append(last)
            at = stop
        return slots

    # -- reading -------------------------------------------------------------------------------
    async def _read_local_whole(
        self,
        fi: int,
        request: tuple[str, int, list[tuple[int, int]]],
        results: list[list[Chunk] | Exception | None],
    ) -> None:
        key, file_size, ranges = request
        try:
            results[fi] = list(await self._local.read_ranges(key, file_size, ranges))
        except Exception as exc:
            results[fi] = exc

    async def _read_local(
        self,
        fi: int,
        pieces: list[_Piece],
        requests: Sequence[tuple[str, int, list[tuple[int, int]]]],
        slots: list[list[list[Chunk | None]]],
        results: list[list[Chunk] | Exception | None],
    ) -> None:
        key, file_size, _ = requests[fi]
        self.local_pieces += len(pieces)
        try:
            chunks = await self._local.read_ranges(
                key, file_size, [(p.pos, p.length) for p in pieces]
            )
        except Exception as exc:
            results[fi] = exc
            return
        for p, chunk in zip(pieces, chunks, strict=True):
            slots[fi][p.range][p.slot] = chunk

    async def _read_remote(
        self,
        peer: AgentInfo,
        files: dict[int, list[_Piece]],
        requests: Sequence[tuple[str, int, list[tuple[int, int]]]],
        slots: list[list[list[Chunk | None]]],
        fallback: list[tuple[_Piece, str]],
    ) -> None:
        order = list(files)
        pieces = [p for fi in order for p in files[fi]]
        self.remote_pieces += len(pieces)
        owner = peer.agent_id
        if self._suspect_until.get(owner, 0.0) > time.monotonic():
            fallback.extend((p, "suspect") for p in pieces)
            return
        wire = [
            FileRanges(requests[fi][0], requests[fi][1], [(p.pos, p.length) for p in files[fi]])
            for fi in order
        ]
        try:
            answers = await self._peers.read(peer, wire)
        except PeerError as exc:
            if exc.reason in ("timeout", "unreachable"):
                now = time.monotonic()
                # Agents that restart come back under new ids: drop expired entries so that
                # the map stays as small as the set of recently failing peers.
                for agent_id, until in list(self._suspect_until.items()):
                    if until <= now:
                        del self._suspect_until[agent_id]
                self._suspect_until[owner] = now + self._suspect_s
            fallback.extend((p, exc.reason) for p in pieces)
            return
        self._suspect_until.pop(owner, None)
        for fi, chunks in zip(order, answers, strict=True):
            for p, chunk in zip(files[fi], chunks, strict=True):
                if chunk is None:
                    fallback.append((p, "error"))
                else:
                    slots[fi][p.range][p.slot] = chunk

    async def _read_fallback(
        self,
        pieces: list[tuple[_Piece, str]],
        requests: Sequence[tuple[str, int, list[tuple[int, int]]]],
        slots: list[list[list[Chunk | None]]],
        results: list[list[Chunk] | Exception | None],
    ) -> None:
        """Read pieces whose owner could not serve them through this agent's own block cache:
        one GET per block, shared by concurrent readers and kept, so fetches that keep needing
        a dead owner's blocks until it leaves the ring do not GET them again each time."""
        groups: dict[int, list[_Piece]] = {}
        for p, reason in pieces:
            self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1
            metrics.PEER_FALLBACKS.labels(reason=reason).inc()
            groups.setdefault(p.file, []).append(p)

        async def read(fi: int, group: list[_Piece]) -> None:
            if results[fi] is not None:
                return  # the file already failed
            key, file_size, _ = requests[fi]
            try:
                async with self._fallback_sem:
                    self.fallback_reads += 1
                    chunks = await self._local.read_ranges(
                        key, file_size, [(p.pos, p.length) for p in group]
                    )
            except Exception as exc:
                results[fi] = exc
                return
            for p, chunk in zip(group, chunks, strict=True):
                slots[fi][p.range][p.slot] = chunk

        await asyncio.gather(*(read(fi, g) for fi, g in groups.items()))


def _finished(results: list[list[Chunk] | Exception | None]) -> list[list[Chunk] | Exception]:
    out: list[list[Chunk] | Exception] = []
    for r in results:
        assert r is not None
        out.append(r)
    return out
