"""The read path: index lookup, block cache, fetch assembly and long poll (DESIGN.md §4)."""

from __future__ import annotations

from shoal.read.block_cache import BlockCache, BlockSource, Chunk, RangeReader, ShortReadError
from shoal.read.fetcher import FetchReader, IndexReader, PartitionFetch, PartitionRead
from shoal.read.index_cache import IndexCache
from shoal.read.waiters import PartitionWaiters

__all__ = [
    "BlockCache",
    "BlockSource",
    "Chunk",
    "FetchReader",
    "IndexCache",
    "IndexReader",
    "PartitionFetch",
    "PartitionRead",
    "PartitionWaiters",
    "RangeReader",
    "ShortReadError",
]
