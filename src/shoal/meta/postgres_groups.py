"""PostgreSQL I/O of consumer-group persistence: transaction bodies, and a mixin that
`PostgresMetadataStore` inherits to expose them. Same tables and meaning as its twin
`sqlite_groups` (schema_pg.sql migration 2); what a write stores is decided in `groups`.

Each OffsetCommit is one statement upserting all its partitions from `unnest` arrays, sorted by
(topic, partition) so that two commits of one group touching the same rows cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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

Conn = Any  # asyncpg.Connection or a pool proxy of one (asyncpg ships no precise types)

_UPSERT_OFFSETS = """
INSERT INTO group_offsets
    (group_id, topic, partition, committed_offset, leader_epoch, metadata, commit_time)
SELECT $1, u.t, u.p, u.o, u.e, u.m, u.c
FROM unnest($2::text[], $3::int[], $4::bigint[], $5::int[], $6::text[], $7::bigint[])
     AS u(t, p, o, e, m, c)
ON CONFLICT (group_id, topic, partition) DO UPDATE SET
    committed_offset = excluded.committed_offset, leader_epoch = excluded.leader_epoch,
    metadata = excluded.metadata, commit_time = excluded.commit_time
"""
_UPSERT_GROUP = """
INSERT INTO consumer_groups
    (group_id, protocol_type, generation, protocol_name, leader, state, members, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
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
INSERT INTO group_coordinators (group_id, epoch) VALUES ($1, 1)
ON CONFLICT (group_id) DO UPDATE SET epoch = group_coordinators.epoch + 1
RETURNING epoch
"""


async def _check_epoch(conn: Conn, group_id: str, epoch: int | None) -> None:
    if epoch is None:
        return
    # FOR SHARE: a claim (an UPDATE of this row) waits for this transaction, and this one
    # for a claim in progress, whose new epoch it then reads (READ COMMITTED re-reads the row).
    stored = await conn.fetchval(
        "SELECT epoch FROM group_coordinators WHERE group_id = $1 FOR SHARE", group_id
    )
    check_coordinator(group_id, None if stored is None else int(stored), epoch)


async def claim_group(conn: Conn, group_id: str) -> tuple[int, StoredGroup | None]:
    epoch = int(await conn.fetchval(_CLAIM, group_id))
    return epoch, await load_group(conn, group_id)


async def save_group(conn: Conn, group: StoredGroup, now_ms: int, epoch: int | None) -> None:
    await _check_epoch(conn, group.group_id, epoch)
    await conn.execute(_UPSERT_GROUP, *group_row(stamped(group, now_ms)))


async def load_group(conn: Conn, group_id: str) -> StoredGroup | None:
    row = await conn.fetchrow(
        f"SELECT {GROUP_COLUMNS} FROM consumer_groups WHERE group_id = $1", group_id
    )
    return None if row is None else group_from_row(group_id, row)


async def list_groups(conn: Conn) -> list[GroupListing]:
    return [listing_from_row(r) for r in await conn.fetch(_LIST_GROUPS)]


async def delete_group(conn: Conn, group_id: str) -> bool:
    groups = await conn.fetchval(
        "WITH d AS (DELETE FROM consumer_groups WHERE group_id = $1 RETURNING 1)"
        " SELECT count(*) FROM d",
        group_id,
    )
    offsets = await conn.fetchval(
        "WITH d AS (DELETE FROM group_offsets WHERE group_id = $1 RETURNING 1)"
        " SELECT count(*) FROM d",
        group_id,
    )
    return bool(groups or offsets)


async def commit_offsets(
    conn: Conn, group_id: str, offsets: list[CommittedOffset], now_ms: int, epoch: int | None
) -> None:
    await _check_epoch(conn, group_id, epoch)
    rows = offsets_to_write(offsets, now_ms)
    await conn.execute(
        _UPSERT_OFFSETS,
        group_id,
        [o.topic for o in rows], [o.partition for o in rows], [o.offset for o in rows],
        [o.leader_epoch for o in rows], [o.metadata for o in rows],
        [o.commit_time_ms for o in rows],
    )


async def fetch_offsets(
    conn: Conn, group_id: str, partitions: list[tuple[str, int]] | None
) -> list[CommittedOffset]:
    if partitions is None:
        rows = await conn.fetch(
            f"SELECT {OFFSET_COLUMNS} FROM group_offsets WHERE group_id = $1"
            " ORDER BY topic, partition",
            group_id,
        )
    else:
        wanted = wanted_partitions(partitions)
        rows = await conn.fetch(
            f"SELECT {OFFSET_COLUMNS} FROM group_offsets WHERE group_id = $1"
            " AND (topic, partition) IN"
            " (SELECT t, p FROM unnest($2::text[], $3::int[]) AS u(t, p))"
            " ORDER BY topic, partition",
            group_id, [w[0] for w in wanted], [w[1] for w in wanted],
        )
    return [offset_from_row(r) for r in rows]


async def delete_offsets(conn: Conn, group_id: str, partitions: list[tuple[str, int]]) -> int:
    removed = await conn.fetchval(
        "WITH d AS (DELETE FROM group_offsets WHERE group_id = $1 AND (topic, partition) IN"
        " (SELECT t, p FROM unnest($2::text[], $3::int[]) AS u(t, p)) RETURNING 1)"
        " SELECT count(*) FROM d",
        group_id, [p[0] for p in partitions], [p[1] for p in partitions],
    )
    return int(removed)


async def committed_offsets_page(conn: Conn, limit: int) -> list[tuple[str, CommittedOffset]]:
    rows = await conn.fetch(
        f"SELECT group_id, {OFFSET_COLUMNS} FROM group_offsets"
        " ORDER BY group_id, topic, partition LIMIT $1",
        max(0, limit),
    )
    return [(str(r[0]), offset_from_row(tuple(r)[1:])) for r in rows]


async def delete_topic_offsets(conn: Conn, topic: str) -> None:
    """Part of delete_topic's transaction: commits for a deleted topic must not survive it."""
    await conn.execute("DELETE FROM group_offsets WHERE topic = $1", topic)


class PostgresGroupStoreMixin:
    """Consumer-group methods of `PostgresMetadataStore` (which supplies `_transaction`,
    `_read` and `_clock`, with its pool, timeouts and error mapping)."""

    _transaction: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[Any]]
    _clock: Clock

    async def claim_group(self, group_id: str) -> tuple[int, StoredGroup | None]:
        result: tuple[int, StoredGroup | None] = await self._transaction(claim_group, group_id)
        return result

    async def save_group(self, group: StoredGroup, coordinator_epoch: int | None = None) -> None:
        await self._transaction(save_group, group, self._clock(), coordinator_epoch)

    async def load_group(self, group_id: str) -> StoredGroup | None:
        result: StoredGroup | None = await self._read(load_group, group_id)
        return result

    async def list_groups(self) -> list[GroupListing]:
        result: list[GroupListing] = await self._read(list_groups)
        return result

    async def delete_group(self, group_id: str) -> bool:
        result: bool = await self._transaction(delete_group, group_id)
        return result

    async def commit_offsets(
        self, group_id: str, offsets: list[CommittedOffset], coordinator_epoch: int | None = None
    ) -> None:
        if offsets:
            await self._transaction(
                commit_offsets, group_id, list(offsets), self._clock(), coordinator_epoch
            )

    async def fetch_offsets(
        self, group_id: str, partitions: list[tuple[str, int]] | None = None
    ) -> list[CommittedOffset]:
        if partitions is not None and not partitions:
            return []
        wanted = None if partitions is None else list(partitions)
        result: list[CommittedOffset] = await self._read(fetch_offsets, group_id, wanted)
        return result

    async def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> int:
        if not partitions:
            return 0
        result: int = await self._transaction(delete_offsets, group_id, list(partitions))
        return result

    async def committed_offsets_page(self, limit: int) -> list[tuple[str, CommittedOffset]]:
        result: list[tuple[str, CommittedOffset]] = await self._read(
            committed_offsets_page, limit
        )
        return result
