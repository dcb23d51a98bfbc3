"""`GroupStore` for SQLite: functions that run on the store's worker thread, and a mixin that
`SqliteMetadataStore` inherits to expose them.

The SQL is kept to what PostgreSQL also accepts (ON CONFLICT upserts, no SQLite-only functions),
so the PostgreSQL store can take the statements over.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from shoal.meta.group_store import CommittedOffset, GroupListing, StoredGroup, StoredMember
from shoal.meta.sqlite_txn import now_ms as _now_ms
from shoal.meta.sqlite_txn import write_txn as _txn

T = TypeVar("T")

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
_OFFSET_COLUMNS = "topic, partition, committed_offset, leader_epoch, metadata, commit_time"


def encode_members(members: tuple[StoredMember, ...]) -> str:
    return json.dumps(
        [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "session_timeout_ms": m.session_timeout_ms,
                "rebalance_timeout_ms": m.rebalance_timeout_ms,
                "subscription": base64.b64encode(m.subscription).decode(),
                "assignment": base64.b64encode(m.assignment).decode(),
            }
            for m in members
        ],
        separators=(",", ":"),
    )


def decode_members(text: str) -> tuple[StoredMember, ...]:
    return tuple(
        StoredMember(
            member_id=str(d["member_id"]),
            group_instance_id=d["group_instance_id"],
            client_id=str(d["client_id"]),
            client_host=str(d["client_host"]),
            session_timeout_ms=int(d["session_timeout_ms"]),
            rebalance_timeout_ms=int(d["rebalance_timeout_ms"]),
            subscription=base64.b64decode(d["subscription"]),
            assignment=base64.b64decode(d["assignment"]),
        )
        for d in json.loads(text)
    )


def _offset(row: tuple[Any, ...]) -> CommittedOffset:
    return CommittedOffset(
        str(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4], int(row[5])
    )


def save_group(conn: sqlite3.Connection, group: StoredGroup) -> None:
    with _txn(conn):
        conn.execute(
            _UPSERT_GROUP,
            (
                group.group_id,
                group.protocol_type,
                group.generation,
                group.protocol_name,
                group.leader,
                group.state,
                encode_members(group.members),
                group.updated_at_ms or _now_ms(),
            ),
        )


def load_group(conn: sqlite3.Connection, group_id: str) -> StoredGroup | None:
    row = conn.execute(
        "SELECT protocol_type, generation, protocol_name, leader, state, members, updated_at"
        " FROM consumer_groups WHERE group_id = ?",
        (group_id,),
    ).fetchone()
    if row is None:
        return None
    return StoredGroup(
        group_id=group_id,
        protocol_type=str(row[0]),
        generation=int(row[1]),
        protocol_name=row[2],
        leader=row[3],
        state=str(row[4]),
        members=decode_members(row[5]),
        updated_at_ms=int(row[6]),
    )


def list_groups(conn: sqlite3.Connection) -> list[GroupListing]:
    return [
        GroupListing(
            group_id=str(r[0]),
            protocol_type=str(r[1]),
            state=str(r[2]),
            members=len(json.loads(r[3])),
            generation=int(r[4]),
            offsets=int(r[5]),
        )
        for r in conn.execute(_LIST_GROUPS).fetchall()
    ]


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
    conn: sqlite3.Connection, group_id: str, offsets: list[CommittedOffset]
) -> None:
    now = _now_ms()
    with _txn(conn):
        conn.executemany(
            _UPSERT_OFFSET,
            [
                (
                    group_id,
                    o.topic,
                    o.partition,
                    o.offset,
                    o.leader_epoch,
                    o.metadata,
                    o.commit_time_ms or now,
                )
                for o in offsets
            ],
        )


def fetch_offsets(
    conn: sqlite3.Connection, group_id: str, partitions: list[tuple[str, int]] | None
) -> list[CommittedOffset]:
    if partitions is None:
        rows = conn.execute(
            f"SELECT {_OFFSET_COLUMNS} FROM group_offsets WHERE group_id = ?"
            " ORDER BY topic, partition",
            (group_id,),
        ).fetchall()
        return [_offset(r) for r in rows]
    out: list[CommittedOffset] = []
    for topic, partition in sorted(set(partitions)):
        row = conn.execute(
            f"SELECT {_OFFSET_COLUMNS} FROM group_offsets"
            " WHERE group_id = ? AND topic = ? AND partition = ?",
            (group_id, topic, partition),
        ).fetchone()
        if row is not None:
            out.append(_offset(row))
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
        f"SELECT group_id, {_OFFSET_COLUMNS} FROM group_offsets"
        " ORDER BY group_id, topic, partition LIMIT ?",
        (max(0, limit),),
    ).fetchall()
    return [(str(r[0]), _offset(r[1:])) for r in rows]


def delete_topic_offsets(conn: sqlite3.Connection, topic: str) -> None:
    """Part of delete_topic's transaction: commits for a deleted topic must not survive it."""
    conn.execute("DELETE FROM group_offsets WHERE topic = ?", (topic,))


class SqliteGroupStoreMixin:
    """`GroupStore` methods of `SqliteMetadataStore` (which supplies `_call`)."""

    _call: Callable[..., Any]

    async def save_group(self, group: StoredGroup) -> None:
        await self._call(save_group, group)

    async def load_group(self, group_id: str) -> StoredGroup | None:
        result: StoredGroup | None = await self._call(load_group, group_id)
        return result

    async def list_groups(self) -> list[GroupListing]:
        result: list[GroupListing] = await self._call(list_groups)
        return result

    async def delete_group(self, group_id: str) -> bool:
        result: bool = await self._call(delete_group, group_id)
        return result

    async def commit_offsets(self, group_id: str, offsets: list[CommittedOffset]) -> None:
        if offsets:
            await self._call(commit_offsets, group_id, list(offsets))

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
        result: list[tuple[str, CommittedOffset]] = await self._call(
            committed_offsets_page, limit
        )
        return result
