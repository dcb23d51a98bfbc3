"""SQLite I/O of cluster membership: functions run on the store's worker thread, and a mixin
that `SqliteMetadataStore` inherits. Registration runs under `BEGIN IMMEDIATE`, so two agents
registering at once are serialised and never get the same node id; which rows go and which
node id the new row gets is `agents.plan_registration`. The PostgreSQL twin is
`postgres_agents`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from shoal.meta.agent_store import AgentInfo
from shoal.meta.agents import AGENT_COLUMNS, agent_from_row, agent_row, plan_registration
from shoal.meta.sqlite_txn import write_txn as _txn


def register_agent(
    conn: sqlite3.Connection, info: AgentInfo, requested: int | None, stale_before_ms: int
) -> AgentInfo:
    with _txn(conn):
        rows = [agent_from_row(r) for r in conn.execute(f"SELECT {AGENT_COLUMNS} FROM agents")]
        plan = plan_registration(info, requested, rows, stale_before_ms)
        conn.executemany("DELETE FROM agents WHERE agent_id = ?", [(a,) for a in plan.evict])
        conn.execute(
            f"INSERT INTO agents ({AGENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            agent_row(plan.row),
        )
    return plan.row


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
    """Agent methods of `SqliteMetadataStore`, on its `membership` lane (`_membership`), so
    that no other work of this process can hold up a heartbeat."""

    _membership: Callable[..., Any]

    async def register_agent(
        self, info: AgentInfo, requested_node_id: int | None, stale_before_ms: int
    ) -> AgentInfo:
        result: AgentInfo = await self._membership(
            register_agent, info, requested_node_id, stale_before_ms
        )
        return result

    async def heartbeat_agent(self, agent_id: str, now_ms: int) -> bool:
        result: bool = await self._membership(heartbeat_agent, agent_id, now_ms)
        return result

    async def deregister_agent(self, agent_id: str) -> None:
        await self._membership(deregister_agent, agent_id)

    async def list_agents(self, alive_after_ms: int) -> list[AgentInfo]:
        result: list[AgentInfo] = await self._membership(list_agents, alive_after_ms)
        return result
