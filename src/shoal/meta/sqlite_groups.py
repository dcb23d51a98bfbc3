"""SQLite I/O of consumer-group persistence: functions that run on the store's worker thread,
and a mixin that `SqliteMetadataStore` inherits to expose them. What a write stores is decided
in `groups`; the PostgreSQL twin is `postgres_groups`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from shoal.common.clock import Clock
from shoal.meta.group_store import CommittedOffset, GroupListing, StoredGroup
from shoal.meta.groups import (
    GROUP_COLUMNS,
    OFFSET_COLUMNS,
    check_coordinator,
    group_from_row,
    group_row,
    listing_from_row,
    offset_from_row,
    offsets_to_write,
    stamped,
    wanted_partitions,
)
from shoal.meta.sqlite_txn import write_txn as _txn

_UPSERT_OFFSET = """
INSERT INTO group_offsets
    (group_id, topic, partition, committed_offset, leader_epoch, metadata, commit_time)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (group_id, topic, partition) DO UPDATE SET
    committed_offset = excluded.committed_offset, leader_epoch = excluded.leader_epoch,
    metadata = excluded.metadata, commit_time = excluded.commit_time
"""
_UPSERT_GROUP = """
INSERT INTO consumer_groups
    (group_id, protocol_type, generation, protocol_name, leader, state, members, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (group_id) DO UPDATE SET
    protocol_type = excluded.protocol_type, generation = excluded.generation,
    protocol_name = excluded.protocol_name, leader = excluded.leader, state = excluded.state,
    members = excluded.members, updated_at = excluded.updated_at
"""
_LIST_GROUPS = """
SELECT g.group_id, coalesce(c.protocol_type, ''), coalesce(c.state, 'Empty'),
       coalesce(c.members, '[]'), coalesce(c.generation, 0),
       (SELECT count(*) FROM group_offsets AS o WHERE o.group_id = g.group_id)
FROM (SELECT group_id FROM consumer_groups UNION SELECT group_id FROM group_offsets) AS g
LEFT JOIN consumer_groups AS c ON c.group_id = g.group_id
ORDER BY g.group_id
"""


_CLAIM = """
INSERT INTO group_coordinators (group_id, epoch) VALUES (?, 1)
ON CONFLICT (group_id) DO UPDATE SET epoch = epoch + 1
RETURNING epoch
"""


def _check_epoch(conn: sqlite3.Connection, group_id: str, epoch: int | None) -> None:
    if epoch is None:
        return
    row = conn.execute(
        "SELECT epoch FROM group_coordinators WHERE group_id = ?", (group_id,)
    ).fetchone()
    check_coordinator(group_id, None if row is None else int(row[0]), epoch)


def claim_group(conn: sqlite3.Connection, group_id: str) -> tuple[int, StoredGroup | None]:
    with _txn(conn):
        epoch = int(conn.execute(_CLAIM, (group_id,)).fetchone()[0])
        return epoch, load_group(conn, group_id)


def save_group(
    conn: sqlite3.Connection, group: StoredGroup, now_ms: int, epoch: int | None
) -> None:
    with _txn(conn):
        _check_epoch(conn, group.group_id, epoch)
        conn.execute(_UPSERT_GROUP, group_row(stamped(group, now_ms)))


def load_group(conn: sqlite3.Connection, group_id: str) -> StoredGroup | None:
    row = conn.execute(
        f"SELECT {GROUP_COLUMNS} FROM consumer_groups WHERE group_id = ?", (group_id,)
    ).fetchone()
    return None if row is None else group_from_row(group_id, row)


def list_groups(conn: sqlite3.Connection) -> list[GroupListing]:
    return [listing_from_row(r) for r in conn.execute(_LIST_GROUPS).fetchall()]


def delete_group(conn: sqlite3.Connection, group_id: str) -> bool:
    with _txn(conn):
        groups = conn.execute(
            "DELETE FROM consumer_groups WHERE group_id = ?", (group_id,)
        ).rowcount
        offsets = conn.execute(
            "DELETE FROM group_offsets WHERE group_id = ?", (group_id,)
        ).rowcount
    return bool(groups or offsets)


def commit_offsets(
    conn: sqlite3.Connection,
    group_id: str,
    offsets: list[CommittedOffset],
    now_ms: int,
    epoch: int | None,
) -> None:
    with _txn(conn):
        _check_epoch(conn, group_id, epoch)
        conn.executemany(
            _UPSERT_OFFSET,
            [
                (group_id, o.topic, o.partition, o.offset, o.leader_epoch, o.metadata,
                 o.commit_time_ms)
                for o in offsets_to_write(offsets, now_ms)
            ],
        )


def fetch_offsets(
    conn: sqlite3.Connection, group_id: str, partitions: list[tuple[str, int]] | None
) -> list[CommittedOffset]:
    if partitions is None:
        rows = conn.execute(
            f"SELECT {OFFSET_COLUMNS} FROM group_offsets WHERE group_id = ?"
            " ORDER BY topic, partition",
            (group_id,),
        ).fetchall()
        return [offset_from_row(r) for r in rows]
    out: list[CommittedOffset] = []
    for topic, partition in wanted_partitions(partitions):
        row = conn.execute(
            f"SELECT {OFFSET_COLUMNS} FROM group_offsets"
            " WHERE group_id = ? AND topic = ? AND partition = ?",
            (group_id, topic, partition),
        ).fetchone()
        if row is not None:
            out.append(offset_from_row(row))
    return out


def delete_offsets(
    conn: sqlite3.Connection, group_id: str, partitions: list[tuple[str, int]]
) -> int:
    removed = 0
    with _txn(conn):
        for topic, partition in partitions:
            removed += conn.execute(
                "DELETE FROM group_offsets WHERE group_id = ? AND topic = ? AND partition = ?",
                (group_id, topic, partition),
            ).rowcount
    return removed


def committed_offsets_page(
    conn: sqlite3.Connection, limit: int
) -> list[tuple[str, CommittedOffset]]:
    rows = conn.execute(
        f"SELECT group_id, {OFFSET_COLUMNS} FROM group_offsets"
        " ORDER BY group_id, topic, partition LIMIT ?",
        (max(0, limit),),
    ).fetchall()
    return [(str(r[0]), offset_from_row(r[1:])) for r in rows]


def delete_topic_offsets(conn: sqlite3.Connection, topic: str) -> None:
    """Part of delete_topic's transaction: commits for a deleted topic must not survive it."""
    conn.execute("DELETE FROM group_offsets WHERE topic = ?", (topic,))


class SqliteGroupStoreMixin:
    """Consumer-group methods of `SqliteMetadataStore` (which supplies `_call`, `_scan` and
    `_clock`)."""

    _call: Callable[..., Any]
    _scan: Callable[..., Any]  # reads that may walk many rows (listing, lag's pages)
    _clock: Clock

    async def claim_group(self, group_id: str) -> tuple[int, StoredGroup | None]:
        result: tuple[int, StoredGroup | None] = await self._call(claim_group, group_id)
        return result

    async def save_group(self, group: StoredGroup, coordinator_epoch: int | None = None) -> None:
        await self._call(save_group, group, self._clock(), coordinator_epoch)

    async def load_group(self, group_id: str) -> StoredGroup | None:
        result: StoredGroup | None = await self._call(load_group, group_id)
        return result

    async def list_groups(self) -> list[GroupListing]:
        result: list[GroupListing] = await self._scan(list_groups)
        return result

    async def delete_group(self, group_id: str) -> bool:
        result: bool = await self._call(delete_group, group_id)
        return result

    async def commit_offsets(
        self, group_id: str, offsets: list[CommittedOffset], coordinator_epoch: int | None = None
    ) -> None:
        if offsets:
            await self._call(
                commit_offsets, group_id, list(offsets), self._clock(), coordinator_epoch
            )

    async def fetch_offsets(
        self, group_id: str, partitions: list[tuple[str, int]] | None = None
    ) -> list[CommittedOffset]:
        wanted = None if partitions is None else list(partitions)
        result: list[CommittedOffset] = await self._call(fetch_offsets, group_id, wanted)
        return result

    async def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> int:
        result: int = await self._call(delete_offsets, group_id, list(partitions))
        return result

    async def committed_offsets_page(self, limit: int) -> list[tuple[str, CommittedOffset]]:
        result: list[tuple[str, CommittedOffset]] = await self._scan(
            committed_offsets_page, limit
        )
        return result
