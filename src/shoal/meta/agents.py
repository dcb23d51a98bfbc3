"""The agent-registration decision and the stored form of agent rows, shared by both backends.

A registering agent's backend loads every `agents` row under its registration lock, asks
`plan_registration` which rows go and which node id the new row gets, and writes that in the
same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from shoal.meta.agent_store import AgentInfo

AGENT_COLUMNS = (
    "agent_id, node_id, host, kafka_port, http_port, az, agent_group, roles,"
    " started_at_ms, heartbeat_at_ms"
)


@dataclass(frozen=True, slots=True)
class Registration:
    evict: tuple[str, ...]  # agent ids whose rows are deleted first
    row: AgentInfo  # the row inserted, with the node id it got


def plan_registration(
    info: AgentInfo, requested: int | None, rows: Sequence[AgentInfo], stale_before_ms: int
) -> Registration:
    """Rows that go: `info.agent_id`'s own, those whose heartbeat is older than
    `stale_before_ms`, and those that advertise the same host and Kafka port and started
    earlier (an earlier life of this agent, killed). "Earlier" keeps two live agents that
    wrongly advertise one address (e.g. 0.0.0.0) from deleting each other's rows in turn.
    The new row gets `requested` if no remaining row holds it, else the smallest free id."""
    evict = tuple(r.agent_id for r in rows if _evicted(r, info, stale_before_ms))
    taken = {r.node_id for r in rows if r.agent_id not in evict}
    return Registration(evict, replace(info, node_id=pick_node_id(requested, taken)))


def _evicted(row: AgentInfo, info: AgentInfo, stale_before_ms: int) -> bool:
    return (
        row.agent_id == info.agent_id
        or row.heartbeat_at_ms < stale_before_ms
        or (
            (row.host, row.kafka_port) == (info.host, info.kafka_port)
            and row.started_at_ms < info.started_at_ms
        )
    )


def pick_node_id(requested: int | None, taken: set[int]) -> int:
    """The requested id when free, else the smallest free id."""
    if requested is not None and requested >= 0 and requested not in taken:
        return requested
    node = 0
    while node in taken:
        node += 1
    return node


def encode_roles(roles: tuple[str, ...]) -> str:
    return ",".join(roles)


def decode_roles(text: str) -> tuple[str, ...]:
    return tuple(r for r in text.split(",") if r)


def agent_from_row(row: Sequence[Any]) -> AgentInfo:
    """An AgentInfo from a row of AGENT_COLUMNS."""
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
    """The AGENT_COLUMNS values of `info`."""
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
