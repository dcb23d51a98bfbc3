"""PostgreSQL I/O of topics and their partitions: transaction bodies run by `postgres.py`.
What a change decides is in `topics`; the SQLite twin is `sqlite_topics`."""

from __future__ import annotations

import uuid
from typing import Any

from shoal.meta.postgres_groups import delete_topic_offsets
from shoal.meta.postgres_maintenance import release_files
from shoal.meta.store import TopicExistsError, TopicInfo, UnknownTopicError
from shoal.meta.topics import altered, encode_configs, grown, topic_from_row

Conn = Any  # asyncpg.Connection or a pool proxy of one (asyncpg ships no precise types)

_TOPIC_COLUMNS = "name, topic_id, partitions, configs"


def _topic(row: Any) -> TopicInfo:
    return topic_from_row(row[0], uuid.UUID(bytes=row[1].bytes), row[2], row[3])


async def get_topic(
    conn: Conn, column: str, value: object, lock: bool = False
) -> TopicInfo | None:
    # `column` is one of two literals chosen by this module, never user input.
    row = await conn.fetchrow(
        f"SELECT {_TOPIC_COLUMNS} FROM topics WHERE {column} = $1"
        + (" FOR UPDATE" if lock else ""),
        value,
    )
    return None if row is None else _topic(row)


async def _lock_topic(conn: Conn, name: str) -> TopicInfo:
    info = await get_topic(conn, "name", name, lock=True)
    if info is None:
        raise UnknownTopicError(name)
    return info


async def list_topics(conn: Conn) -> list[TopicInfo]:
    rows = await conn.fetch(f"SELECT {_TOPIC_COLUMNS} FROM topics ORDER BY name")
    return [_topic(r) for r in rows]


async def create_topic(
    conn: Conn, name: str, partitions: int, configs: dict[str, str], now_ms: int
) -> TopicInfo:
    topic_id = uuid.uuid4()
    created = await conn.fetchval(
        "INSERT INTO topics (name, topic_id, partitions, configs, created_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING 1",
        name, topic_id, partitions, encode_configs(configs), now_ms,
    )
    if created is None:
        raise TopicExistsError(name)
    await conn.execute(
        "INSERT INTO partitions (topic, partition) SELECT $1, generate_series(0, $2 - 1)",
        name, partitions,
    )
    return TopicInfo(name, topic_id, partitions, dict(configs))


async def delete_topic(conn: Conn, name: str, topic_id: uuid.UUID | None, now_ms: int) -> None:
    info = await _lock_topic(conn, name)
    if topic_id is not None and info.topic_id != topic_id:
        raise UnknownTopicError(f"{name} has another topic id now (re-created)")
    # Same lock order as commit_file (sorted partitions first), so the two cannot deadlock.
    await conn.execute(
        "SELECT 1 FROM partitions WHERE topic = $1 ORDER BY topic, partition FOR UPDATE", name
    )
    # Files stay: garbage collection removes them a grace after no row points into them.
    dropped = await conn.fetch("DELETE FROM batches WHERE topic = $1 RETURNING file_ref", name)
    await release_files(conn, {int(r[0]) for r in dropped}, now_ms)
    for table in ("producer_state", "partitions"):
        await conn.execute(f"DELETE FROM {table} WHERE topic = $1", name)
    await delete_topic_offsets(conn, name)
    await conn.execute("DELETE FROM topics WHERE name = $1", name)


async def create_partitions(conn: Conn, name: str, total: int) -> TopicInfo:
    info = await _lock_topic(conn, name)
    new = grown(info, total)
    await conn.execute(
        "INSERT INTO partitions (topic, partition) SELECT $1, generate_series($2, $3 - 1)",
        name, info.partitions, total,
    )
    await conn.execute("UPDATE topics SET partitions = $1 WHERE name = $2", total, name)
    return new


async def alter_configs(
    conn: Conn, name: str, configs: dict[str, str | None], replace: bool
) -> TopicInfo:
    new = altered(await _lock_topic(conn, name), configs, replace)
    await conn.execute(
        "UPDATE topics SET configs = $1 WHERE name = $2", encode_configs(new.configs), name
    )
    return new
