"""PostgreSQL I/O of cluster membership: transaction bodies and a mixin that
`PostgresMetadataStore` inherits. Same table and meaning as its twin `sqlite_agents`
(schema_pg.sql migration 3); which rows a registration removes and which node id it gets is
`agents.plan_registration`.

Registration takes a transaction-level advisory lock, so agents registering at once are
serialised and never pick the same node id (the UNIQUE constraint would reject it anyway), and
reads the rows it plans over FOR UPDATE, so a heartbeat cannot change a row between the plan
and the delete; heartbeats are single-row updates that take no advisory lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from shoal.meta.agent_store import AgentInfo
from shoal.meta.agents import AGENT_COLUMNS, agent_from_row, agent_row, plan_registration

Conn = Any  # asyncpg.Connection or a pool proxy of one (asyncpg ships no precise types)
# pg_advisory_xact_lock key for node id assignment ("agents" in ASCII; any constant would do).
_REGISTER_LOCK: Final = 0x6167656E7473


async def register_agent(
    conn: Conn, info: AgentInfo, requested: int | None, stale_before_ms: int
) -> AgentInfo:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _REGISTER_LOCK)
    rows = await conn.fetch(f"SELECT {AGENT_COLUMNS} FROM agents FOR UPDATE")
    plan = plan_registration(info, requested, [agent_from_row(r) for r in rows], stale_before_ms)
    if plan.evict:
        await conn.execute(
            "DELETE FROM agents WHERE agent_id = ANY($1::text[])", list(plan.evict)
        )
    await conn.execute(
        f"INSERT INTO agents ({AGENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        *agent_row(plan.row),
    )
    return plan.row


async def heartbeat_agent(conn: Conn, agent_id: str, now_ms: int) -> bool:
    found = await conn.fetchval(
        "UPDATE agents SET heartbeat_at_ms = $1 WHERE agent_id = $2 RETURNING 1",
        now_ms, agent_id,
    )
    return found is not None


async def deregister_agent(conn: Conn, agent_id: str) -> None:
    await conn.execute("DELETE FROM agents WHERE agent_id = $1", agent_id)


async def list_agents(conn: Conn, alive_after_ms: int) -> list[AgentInfo]:
    rows = await conn.fetch(
        f"SELECT {AGENT_COLUMNS} FROM agents WHERE heartbeat_at_ms >= $1 ORDER BY node_id",
        alive_after_ms,
    )
    return [agent_from_row(tuple(r)) for r in rows]


class PostgresAgentStoreMixin:
    """Agent methods of `PostgresMetadataStore` (which supplies `_transaction` and
    `_read`, with its pool, timeouts and error mapping)."""

    _transaction: Callable[..., Awaitable[Any]]
    _read: Callable[..., Awaitable[Any]]

    async def register_agent(
        self, info: AgentInfo, requested_node_id: int | None, stale_before_ms: int
    ) -> AgentInfo:
        result: AgentInfo = await self._transaction(
            register_agent, info, requested_node_id, stale_before_ms
        )
        return result

    async def heartbeat_agent(self, agent_id: str, now_ms: int) -> bool:
        result: bool = await self._read(heartbeat_agent, agent_id, now_ms)
        return result

    async def deregister_agent(self, agent_id: str) -> None:
        await self._read(deregister_agent, agent_id)

    async def list_agents(self, alive_after_ms: int) -> list[AgentInfo]:
        result: list[AgentInfo] = await self._read(list_agents, alive_after_ms)
        return result
