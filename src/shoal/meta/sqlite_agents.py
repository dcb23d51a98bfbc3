"""`AgentStore` for SQLite: functions run on the store's worker thread, and a mixin that
`SqliteMetadataStore` inherits. Registration runs under `BEGIN IMMEDIATE`, so two agents
registering at once are serialised and never get the same node id."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from shoal.cluster.model import AgentInfo
from shoal.meta.agent_store import decode_roles, encode_roles, pick_node_id
from shoal.meta.sqlite_txn import write_txn as _txn

AGENT_COLUMNS = (
    "agent_id, node_id, host, kafka_port, http_port, az, agent_group, roles,"
    " started_at_ms, heartbeat_at_ms"
)


def agent_from_row(row: Any) -> AgentInfo:
    return AgentInfo(
        agent_id=str(row[0]),
        node_id=int(row[1]),
        host=str(row[2]),
        kafka_port=int(row[3]),
        http_port=int(row[4]),
        az=str(row[5]),
        agent_group=str(row[6]),
        roles=decode_roles(str(row[7])),
        started_at_ms=int(row[8]),
        heartbeat_at_ms=int(row[9]),
    )


def agent_row(info: AgentInfo) -> tuple[Any, ...]:
    return (
        info.agent_id,
        info.node_id,
        info.host,
        info.kafka_port,
        info.http_port,
        info.az,
        info.agent_group,
        encode_roles(info.roles),
        info.started_at_ms,
        info.heartbeat_at_ms,
    )


def register_agent(
    conn: sqlite3.Connection, info: AgentInfo, requested: int | None, stale_before_ms: int
) -> AgentInfo:
    with _txn(conn):
        conn.execute(
            "DELETE FROM agents WHERE agent_id = ? OR heartbeat_at_ms < ?"
            " OR (host = ? AND kafka_port = ? AND started_at_ms < ?)",
            (info.agent_id, stale_before_ms, info.host, info.kafka_port, info.started_at_ms),
        )
        taken = {int(r[0]) for r in conn.execute("SELECT node_id FROM agents").fetchall()}
        row = replace(info, node_id=pick_node_id(requested, taken))
        conn.execute(
            f"INSERT INTO agents ({AGENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            agent_row(row),
        )
    return row


def heartbeat_agent(conn: sqlite3.Connection, agent_id: str, now_ms: int) -> bool:
    cur = conn.execute(
        "UPDATE agents SET heartbeat_at_ms = ? WHERE agent_id = ?", (now_ms, agent_id)
    )
    return cur.rowcount > 0


def deregister_agent(conn: sqlite3.Connection, agent_id: str) -> None:
    conn.execute("DELETE FROM agents WHERE agent_id = ?", (agent_id,))


def list_agents(conn: sqlite3.Connection, alive_after_ms: int) -> list[AgentInfo]:
    rows = conn.execute(
        f"SELECT {AGENT_COLUMNS} FROM agents WHERE heartbeat_at_ms >= ? ORDER BY node_id",
        (alive_after_ms,),
    ).fetchall()
    return [agent_from_row(r) for r in rows]


class SqliteAgentStoreMixin:
    """`AgentStore` methods of `SqliteMetadataStore` (which supplies `_call`)."""

    _call: Callable[..., Any]

    async def register_agent(
        self, info: AgentInfo, requested_node_id: int | None, stale_before_ms: int
    ) -> AgentInfo:
        result: AgentInfo = await self._call(
            register_agent, info, requested_node_id, stale_before_ms
        )
        return result

    async def heartbeat_agent(self, agent_id: str, now_ms: int) -> bool:
        result: bool = await self._call(heartbeat_agent, agent_id, now_ms)
        return result

    async def deregister_agent(self, agent_id: str) -> None:
        await self._call(deregister_agent, agent_id)

    async def list_agents(self, alive_after_ms: int) -> list[AgentInfo]:
        result: list[AgentInfo] = await self._call(list_agents, alive_after_ms)
        return result
