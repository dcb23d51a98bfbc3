"""The in-memory block cache: aligned blocks of immutable objects, loaded with one GET each.

Objects never change once written (DESIGN.md §2.3), so a cached block is never stale and needs
no invalidation; only the byte budget removes blocks. A fetch asks for byte ranges; the cache
turns them into whole-block loads so that every byte is fetched from the object store about once,
however many consumers read it: object-store GETs ≈ bytes read / block_bytes.

`BlockSource` is the seam the fetch reader calls. Today the local `BlockCache` implements it; in
a cluster a ring router will, sending each range to the agent that owns its block.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from shoal.metrics import (
    BLOCK_CACHE_BYTES,
    BLOCK_CACHE_EVICTIONS,
    BLOCK_CACHE_HITS,
    BLOCK_CACHE_MISSES,
)

log = logging.getLogger(__name__)

# (object key, block index, block length). The length is the caller's: every block but an
# object's last is `block_bytes` long, and the last one's length follows from the file size the
# caller names. Keying by it means a caller (a peer) that names a wrong size gets a block of
# its own, never one served to the callers that name the right size.
BlockKey = tuple[str, int, int]
# Range bytes handed out without copying: a view into a cached block, valid while held. Holding
# one keeps its whole block in memory, so callers drop them once the response is encoded.
Chunk = bytes | memoryview
# Ranges smaller than 1/8 of their block are copied out rather than viewed (read_ranges).
VIEW_FRACTION_MIN = 8


class RangeReader(Protocol):
    """What the cache needs from `shoal.objstore.store.ObjectStore`."""

    async def get_range(self, key: str, start: int, end: int) -> bytes: ...


class BlockSource(Protocol):
    """Where the fetch reader gets batch bytes from (local cache today, ring router later)."""

    async def read_ranges(
        self, key: str, file_size: int, ranges: list[tuple[int, int]]
    ) -> Sequence[Chunk]:
        """Bytes of each `(pos, length)` range of object `key`, in the order given. Views may
        point into shared buffers: read them, never keep them beyond the response."""
        ...


class ShortReadError(OSError):
    """The object store returned fewer bytes than the block holds (object truncated or gone)."""


class BlockCache:
    """LRU cache of aligned object blocks under a byte budget, with single-flight loads.

    Block i of an object covers [i*block_bytes, min((i+1)*block_bytes, file_size)).
    """

    def __init__(
        self,
        store: RangeReader,
        block_bytes: int,
        cache_bytes_max: int,
        *,
        get_timeout_s: float | None = 120.0,
    ) -> None:
        """`get_timeout_s` bounds one block load as a whole; keep it above the store's own
        per-attempt timeout times its retries, so that it only catches a hung store."""
        if block_bytes <= 0:
            raise ValueError("block_bytes must be positive")
        if cache_bytes_max < 0:
            raise ValueError("cache_bytes_max must not be negative")
        self._store = store
        self.block_bytes = block_bytes
        self.cache_bytes_max = cache_bytes_max
        self._get_timeout_s = get_timeout_s
        self._blocks: OrderedDict[BlockKey, bytes] = OrderedDict()
        self._warmed = 0
        # In-flight loads. Tasks, not bare futures: a load must outlive a cancelled waiter.
        self._loading: dict[BlockKey, asyncio.Task[bytes]] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._joined = 0
        self._evictions = 0
        self._errors = 0
        self._uncacheable = 0

    # -- public API ----------------------------------------------------------------------------
    async def read(self, key: str, file_size: int, pos: int, length: int) -> bytes:
        """Exactly the bytes [pos, pos+length) of object `key` (whose size is `file_size`)."""
        _check_range(file_size, pos, length)
        if length == 0:
            return b""
        first, last = self._span(pos, length)
        if first == last:
            block = await self._get_block(key, file_size, first)
            return _slice(block, pos - first * self.block_bytes, length)
        blocks = await asyncio.gather(
            *(self._get_block(key, file_size, i) for i in range(first, last + 1))
        )
        return self._assemble(dict(zip(range(first, last + 1), blocks, strict=True)), pos, length)

    async def read_ranges(
        self, key: str, file_size: int, ranges: list[tuple[int, int]]
    ) -> list[Chunk]:
        """Bytes of each `(pos, length)` range; every block needed is loaded once for the call.

        A range inside one block comes as a memoryview of the cached block (no copy) when it
        is at least 1/VIEW_FRACTION_MIN of the block; a smaller one is copied, so that what the
        caller holds pins at most VIEW_FRACTION_MIN times its own size of blocks (a fetch of
        1 KiB from each of 1,000 blocks must not keep 4 GiB alive after the cache evicted
        them). A range across blocks is joined into new bytes."""
        needed: set[int] = set()
        for pos, length in ranges:
            _check_range(file_size, pos, length)
            if length:
                first, last = self._span(pos, length)
                needed.update(range(first, last + 1))
        # Local references keep every block alive while assembling, even if evicted meanwhile.
        blocks: dict[int, bytes] = {}
        missing: list[int] = []
        for i in sorted(needed):
            block = self._hit(self._bkey(key, file_size, i))
            if block is None:
                missing.append(i)
            else:
                blocks[i] = block
        if missing:
            loaded = await asyncio.gather(*(self._get_block(key, file_size, i) for i in missing))
            blocks.update(zip(missing, loaded, strict=True))
        bb = self.block_bytes
        out: list[Chunk] = []
        for pos, length in ranges:
            first = pos // bb
            if length and (pos + length - 1) // bb == first:
                start = pos - first * bb
                block = blocks[first]
                view = memoryview(block)[start : start + length]
                out.append(view if length * VIEW_FRACTION_MIN >= len(block) else bytes(view))
            else:
                out.append(self._assemble(blocks, pos, length) if length else b"")
        return out

    def stats(self) -> dict[str, Any]:
        """Figures for the status page."""
        return {
            "block_bytes": self.block_bytes,
            "cache_bytes_max": self.cache_bytes_max,
            "bytes": self._bytes,
            "blocks": len(self._blocks),
            "warmed_on_write": self._warmed,
            "loading": len(self._loading),
            "hits": self._hits,
            "misses": self._misses,
            "joined_loads": self._joined,
            "evictions": self._evictions,
            "load_errors": self._errors,
            "uncacheable": self._uncacheable,
        }

    def __contains__(self, item: object) -> bool:
        """`(key, index)` is cached, at any length (for tests and status)."""
        return any(bkey[:2] == item for bkey in self._blocks)

    # -- internals -----------------------------------------------------------------------------
    def _bkey(self, key: str, file_size: int, index: int) -> BlockKey:
        start = index * self.block_bytes
        return key, index, min(self.block_bytes, file_size - start)

    def _span(self, pos: int, length: int) -> tuple[int, int]:
        return pos // self.block_bytes, (pos + length - 1) // self.block_bytes

    def _assemble(self, blocks: dict[int, bytes], pos: int, length: int) -> bytes:
        bb = self.block_bytes
        first, last = self._span(pos, length)
        if first == last:
            return _slice(blocks[first], pos - first * bb, length)
        end = pos + length
        parts: list[memoryview] = []
        for i in range(first, last + 1):
            start = max(pos, i * bb) - i * bb
            stop = min(end, (i + 1) * bb) - i * bb
            parts.append(memoryview(blocks[i])[start:stop])
        return b"".join(parts)

    def _hit(self, bkey: BlockKey) -> bytes | None:
        block = self._blocks.get(bkey)
        if block is not None:
            self._blocks.move_to_end(bkey)
            self._hits += 1
            BLOCK_CACHE_HITS.inc()
        return block

    async def _get_block(self, key: str, file_size: int, index: int) -> bytes:
        bkey = self._bkey(key, file_size, index)
        block = self._hit(bkey)
        if block is not None:
            return block
        task = self._loading.get(bkey)
        if task is None:
            self._misses += 1
            BLOCK_CACHE_MISSES.inc()
            task = asyncio.get_running_loop().create_task(self._load(bkey))
            task.add_done_callback(self._load_done)
            self._loading[bkey] = task
        else:
            self._joined += 1
            BLOCK_CACHE_HITS.inc()
        # shield: cancelling this waiter must not cancel the load other waiters share.
        return await asyncio.shield(task)

    async def _load(self, bkey: BlockKey) -> bytes:
        key, index, length = bkey
        start = index * self.block_bytes
        end = start + length
        try:
            async with asyncio.timeout(self._get_timeout_s):
                data = await self._store.get_range(key, start, end)
            if len(data) != end - start:
                raise ShortReadError(
                    f"{key} block {index}: got {len(data)} bytes, expected {end - start}"
                )
            block = bytes(data)  # a bytes object, whatever buffer type the store returned
            self._insert(bkey, block)
            return block
        finally:
            self._loading.pop(bkey, None)

    def _load_done(self, task: asyncio.Task[bytes]) -> None:
        # Retrieve the exception so that a load whose waiters were all cancelled does not log
        # "exception was never retrieved"; errors are counted, never cached.
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._errors += 1
            log.debug("block load failed: %r", exc)

    def warm(self, key: str, data: bytes, owns: Callable[[int], bool]) -> int:
        """Cache the blocks of a just-written object that `owns(block_index)` says are ours,
        so consumers reading the tail of the log need no GET for them. Returns blocks added."""
        added = 0
        bb = self.block_bytes
        for index in range((len(data) + bb - 1) // bb):
            bkey = self._bkey(key, len(data), index)
            if bkey in self._blocks or bkey in self._loading or not owns(index):
                continue
            self._insert(bkey, data[index * bb : (index + 1) * bb])
            added += 1
        self._warmed += added
        return added

    def _insert(self, bkey: BlockKey, block: bytes) -> None:
        size = len(block)
        if size > self.cache_bytes_max:
            self._uncacheable += 1
            return
        old = self._blocks.pop(bkey, None)
        if old is not None:
            self._bytes -= len(old)
        self._blocks[bkey] = block
        self._bytes += size
        while self._bytes > self.cache_bytes_max:
            _, evicted = self._blocks.popitem(last=False)
            self._bytes -= len(evicted)
            self._evictions += 1
            BLOCK_CACHE_EVICTIONS.inc()
        BLOCK_CACHE_BYTES.set(self._bytes)


def spanned_bytes(block_bytes: int, ranges: Iterable[tuple[str, int, int, int]]) -> int:
    """Bytes of the distinct blocks that `(object key, object size, pos, length)` ranges
    touch: what reading them loads and may pin (a view keeps its whole block alive), so what
    read budgets count rather than the bytes asked for (one byte from each of 1,000 blocks
    holds 4 GiB). An object's last block counts its real length: a small segment file is one
    small block."""
    blocks: dict[tuple[str, int], int] = {}
    for key, size, pos, length in ranges:
        if length > 0:
            first, last = pos // block_bytes, (pos + length - 1) // block_bytes
            for i in range(first, last + 1):
                blocks[(key, i)] = min(block_bytes, size - i * block_bytes)
    return sum(blocks.values())


def _slice(block: bytes, start: int, length: int) -> bytes:
    if start == 0 and length == len(block):
        return block
    return bytes(memoryview(block)[start : start + length])


def _check_range(file_size: int, pos: int, length: int) -> None:
    if pos < 0 or length < 0 or pos + length > file_size:
        raise ValueError(f"range [{pos}, {pos + length}) outside object of {file_size} bytes")
