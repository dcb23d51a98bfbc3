"""Per-agent cache of recent index rows (DESIGN.md §4 step 1), in front of `read_batches`.

Each partition keeps one *covered range* [start, end) of offsets: every committed batch of the
partition that holds an offset in the range is in the cached list. A `read_batches` answer covers
[first row's base_offset, last row's last_offset + 1) because the store returns all rows from the
fetch offset on, in order, as a prefix. The cover stays complete after later commits: those only
add batches at offsets >= the high watermark, and the cover never reaches past the watermark that
was current when it was read. A tailing consumer extends the cover at its end.

Why cached rows stay valid: committed rows never change their offsets. Compaction may move a
batch to a new file, but the old file stays readable for the garbage collector's grace period,
and the agent keeps `ttl_s` at a quarter of it at most; a read that fails anyway drops the
partition's cover (the fetcher's `forget`), so the client's retry finds the new rows. A deleted
and re-created topic has a new topic id, and covers are keyed by the id of the partition state
the caller just read from the metadata store, so rows of the old topic are never served for the
new one, on any agent, whoever handled the delete. (Without an id, a cover whose end lies beyond
the partition's current high watermark and that has not grown for `race_s` is taken for a
deleted topic and dropped.) `forget` drops a topic at once (the agent that deletes it frees the
memory).
"""

from __future__ import annotations

import time
import uuid
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from shoal.meta.store import BatchRow

# (topic, partition, topic id): one cover per partition of each incarnation of a topic name.
CoverKey = tuple[str, int, uuid.UUID | None]


class BatchIndex(Protocol):
    async def read_batches(
        self, topic: str, partition: int, offset: int, max_bytes: int, max_batches: int = 1000
    ) -> list[BatchRow]: ...


class _Cover:
    __slots__ = ("bases", "born", "end", "rows", "touched")

    def __init__(self, rows: list[BatchRow], born: float) -> None:
        self.rows = rows
        self.bases = [r.base_offset for r in rows]
        self.end = rows[-1].last_offset + 1
        self.born = born
        self.touched = born  # last time rows were added

    @property
    def start(self) -> int:
        return self.bases[0]

    def extend(self, rows: list[BatchRow]) -> None:
        self.rows.extend(rows)
        self.bases.extend(r.base_offset for r in rows)
        self.end = rows[-1].last_offset + 1

    def trim_front(self, keep: int) -> int:
        """Keep the last `keep` rows; returns how many were dropped."""
        drop = len(self.rows) - keep
        if drop > 0:
            del self.rows[:drop]
            del self.bases[:drop]
        return max(drop, 0)


class IndexCache:
    """Bounded (rows in total and per partition, LRU over partitions, age) cache of index rows."""

    def __init__(
        self,
        meta: BatchIndex,
        *,
        rows_max: int = 100_000,
        partition_rows_max: int = 20_000,
        ttl_s: float = 30.0,
        race_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._meta = meta
        self._rows_max = rows_max
        self._partition_rows_max = max(1, min(partition_rows_max, rows_max))
        self._ttl_s = ttl_s
        self._race_s = race_s
        self._clock = clock
        self._covers: OrderedDict[CoverKey, _Cover] = OrderedDict()
        self._rows = 0
        self.hits = 0
        self.misses = 0

    async def read_batches(
        self,
        topic: str,
        partition: int,
        offset: int,
        max_bytes: int,
        max_batches: int,
        high_watermark: int,
        topic_id: uuid.UUID | None = None,
    ) -> list[BatchRow]:
        """As `MetadataStore.read_batches`, given the partition's current state (high
        watermark, topic id) as just read from the store."""
        key = (topic, partition, topic_id)
        cover = self._valid(key, high_watermark)
        if cover is None or not cover.start <= offset < cover.end:
            self.misses += 1
            rows = await self._meta.read_batches(topic, partition, offset, max_bytes, max_batches)
            if rows:
                self._store(key, rows)
            return rows
        self.hits += 1
        out, total = _take(cover, offset, max_bytes, max_batches)
        if total >= max_bytes or len(out) >= max_batches or cover.end >= high_watermark:
            return out
        # The cover ends before the data does: read the rest and extend the cover.
        end = cover.end
        more = await self._meta.read_batches(
            topic, partition, end, max_bytes - total, max_batches - len(out)
        )
        if more:
            if more[0].base_offset == end:
                self._store(key, more)
            out.extend(more)
        return out

    def forget(self, topic: str, partition: int | None = None) -> None:
        keys = [k for k in self._covers if k[0] == topic and partition in (None, k[1])]
        for k in keys:
            self._drop(k)

    def stats(self) -> dict[str, int]:
        return {
            "partitions": len(self._covers),
            "rows": self._rows,
            "hits": self.hits,
            "misses": self.misses,
        }

    # -- internals -----------------------------------------------------------------------------
    def _valid(self, key: CoverKey, high_watermark: int) -> _Cover | None:
        cover = self._covers.get(key)
        if cover is None:
            return None
        now = self._clock()
        # A cover past the watermark is either newer than the caller's state (a concurrent fetch
        # just extended it: fine, the fetch reader trims to its watermark) or left from a deleted
        # topic whose name came back (drop it). Recent growth tells the two apart.
        stale = cover.end > high_watermark and now - cover.touched > self._race_s
        if stale or now - cover.born > self._ttl_s:
            self._drop(key)
            return None
        self._covers.move_to_end(key)
        return cover

    def _store(self, key: CoverKey, rows: list[BatchRow]) -> None:
        """Extend the partition's cover if `rows` continue it, else replace it."""
        cover = self._covers.get(key)
        if cover is not None and rows[0].base_offset == cover.end:
            cover.extend(rows)
            cover.touched = self._clock()
            self._rows += len(rows)
        else:
            if cover is not None:
                self._drop(key)
            cover = _Cover(list(rows), self._clock())
            self._covers[key] = cover
            self._rows += len(rows)
        self._covers.move_to_end(key)
        if len(cover.rows) > self._partition_rows_max:
            # Trim to 3/4 so that a tailing consumer does not pay a list shift per fetch.
            self._rows -= cover.trim_front(max(1, self._partition_rows_max * 3 // 4))
        while self._rows > self._rows_max and self._covers:
            self._drop(next(iter(self._covers)))

    def _drop(self, key: CoverKey) -> None:
        cover = self._covers.pop(key, None)
        if cover is not None:
            self._rows -= len(cover.rows)


def _take(
    cover: _Cover, offset: int, max_bytes: int, max_batches: int
) -> tuple[list[BatchRow], int]:
    """Rows from the one holding `offset`, up to the limits (the first row always)."""
    i = bisect_right(cover.bases, offset) - 1
    rows = cover.rows
    if i < 0 or rows[i].last_offset < offset:
        # A gap (compacted batches): the next row holds the next offset.
        i += 1
    out: list[BatchRow] = []
    total = 0
    stop = min(len(rows), i + max_batches)
    while i < stop and total < max_bytes:
        row = rows[i]
        out.append(row)
        total += row.byte_len
        i += 1
    return out, total
