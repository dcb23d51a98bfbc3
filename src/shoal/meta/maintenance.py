"""Decisions of the maintenance calls (retention, DeleteRecords, garbage collection), shared by
both backends: each loads the rows, asks here, and writes the answer in its transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shoal.meta.store import FileInfo, RowMove


def new_log_start(log_start_offset: int, high_watermark: int, requested: int) -> int:
    """Where `advance_log_start` moves the log start: up to `requested`, clamped to the high
    watermark, never backwards."""
    return max(log_start_offset, min(requested, high_watermark))


def page_limit(limit: int) -> int:
    """Listing calls return at least one row per page, so a caller always makes progress."""
    return max(1, limit)


def dropped_in_request_order(requested: list[str], dropped: set[str]) -> list[str]:
    """The ids `forget_files` reports: those dropped, once each, in the order asked for."""
    return [f for f in dict.fromkeys(requested) if f in dropped]


def check_swap(file: FileInfo | None, moves: list[RowMove]) -> None:
    """A swap moves rows only into a file it records."""
    if file is None and moves:
        raise ValueError("a swap without a new file cannot move rows")


def oldest_first(rows: Sequence[Sequence[Any]], limit: int) -> list[Sequence[Any]]:
    """The GC's page of unreferenced files from its two index reads (rows led by the file's
    surrogate id): in recording order, at most `limit`."""
    return sorted(rows, key=lambda r: int(r[0]))[:limit]
