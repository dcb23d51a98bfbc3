"""SQLite I/O of topics and their partitions, on the store's worker thread (see `sqlite.py`).
What a change decides is in `topics`; the PostgreSQL twin is `postgres_topics`."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from shoal.meta.sqlite_groups import delete_topic_offsets
from shoal.meta.sqlite_maintenance import release_files
from shoal.meta.sqlite_txn import write_txn
from shoal.meta.store import TopicExistsError, TopicInfo, UnknownTopicError
from shoal.meta.topics import altered, encode_configs, grown, topic_from_row

_TOPIC_COLUMNS = "name, topic_id, partitions, configs"


def _topic(row: tuple[Any, ...]) -> TopicInfo:
    return topic_from_row(row[0], uuid.UUID(row[1]), row[2], row[3])


def get_topic(conn: sqlite3.Connection, column: str, value: str) -> TopicInfo | None:
    # `column` is one of two literals chosen by the caller, never user input.
    row = conn.execute(
        f"SELECT {_TOPIC_COLUMNS} FROM topics WHERE {column} = ?", (value,)
    ).fetchone()
    return None if row is None else _topic(row)


def _require_topic(conn: sqlite3.Connection, name: str) -> TopicInfo:
    info = get_topic(conn, "name", name)
    if info is None:
        raise UnknownTopicError(name)
    return info


def list_topics(conn: sqlite3.Connection) -> list[TopicInfo]:
    rows = conn.execute(f"SELECT {_TOPIC_COLUMNS} FROM topics ORDER BY name").fetchall()
    return [_topic(r) for r in rows]


def create_topic(
    conn: sqlite3.Connection, name: str, partitions: int, configs: dict[str, str], now_ms: int
) -> TopicInfo:
    topic_id = uuid.uuid4()
    with write_txn(conn):
        if get_topic(conn, "name", name) is not None:
            raise TopicExistsError(name)
        conn.execute(
            "INSERT INTO topics (name, topic_id, partitions, configs, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (name, str(topic_id), partitions, encode_configs(configs), now_ms),
        )
        conn.executemany(
            "INSERT INTO partitions (topic, partition) VALUES (?, ?)",
            [(name, p) for p in range(partitions)],
        )
    return TopicInfo(name, topic_id, partitions, dict(configs))


def delete_topic(
    conn: sqlite3.Connection, name: str, topic_id: uuid.UUID | None, now_ms: int
) -> None:
    with write_txn(conn):
        info = _require_topic(conn, name)
        if topic_id is not None and info.topic_id != topic_id:
            raise UnknownTopicError(f"{name} has another topic id now (re-created)")
        # Files stay: garbage collection removes them a grace after no row points into them.
        dropped = conn.execute(
            "DELETE FROM batches WHERE topic = ? RETURNING file_ref", (name,)
        ).fetchall()
        release_files(conn, {int(r[0]) for r in dropped}, now_ms)
        for table in ("producer_state", "partitions"):
            conn.execute(f"DELETE FROM {table} WHERE topic = ?", (name,))
        delete_topic_offsets(conn, name)
        conn.execute("DELETE FROM topics WHERE name = ?", (name,))


def create_partitions(conn: sqlite3.Connection, name: str, total: int) -> TopicInfo:
    with write_txn(conn):
        info = _require_topic(conn, name)
        new = grown(info, total)
        conn.executemany(
            "INSERT INTO partitions (topic, partition) VALUES (?, ?)",
            [(name, p) for p in range(info.partitions, total)],
        )
        conn.execute("UPDATE topics SET partitions = ? WHERE name = ?", (total, name))
    return new


def alter_configs(
    conn: sqlite3.Connection, name: str, configs: dict[str, str | None], replace: bool
) -> TopicInfo:
    with write_txn(conn):
        new = altered(_require_topic(conn, name), configs, replace)
        conn.execute(
            "UPDATE topics SET configs = ? WHERE name = ?", (encode_configs(new.configs), name)
        )
    return new
