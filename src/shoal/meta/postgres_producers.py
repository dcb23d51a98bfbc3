"""PostgreSQL I/O of InitProducerId: the transaction body `postgres.py` runs. It looks up the
row `producers.lookup` names (FOR UPDATE, so two agents bumping one id serialise) and carries
out `producers.decide_init`. The SQLite twin is `sqlite_producers`."""

from __future__ import annotations

from typing import Any

from shoal.meta.producers import Action, Lookup, ProducerRow, decide_init, lookup

Conn = Any  # asyncpg.Connection or a pool proxy of one (asyncpg ships no precise types)


async def init_producer(
    conn: Conn, transactional_id: str | None, producer_id: int, producer_epoch: int, now_ms: int
) -> tuple[int, int]:
    how = lookup(transactional_id)
    while True:
        current = await _load(conn, how, transactional_id)
        decision = decide_init(transactional_id, producer_id, producer_epoch, current)
        if decision.action is Action.BUMP:
            await conn.execute(
                "UPDATE producers SET epoch = $1, updated_at = $2 WHERE producer_id = $3",
                decision.epoch, now_ms, decision.producer_id,
            )
            return decision.producer_id, decision.epoch
        if decision.action is Action.RETIRE_AND_ALLOCATE:
            # Release the transactional id from the exhausted producer id before re-mapping it.
            await conn.execute(
                "UPDATE producers SET transactional_id = NULL, updated_at = $1"
                " WHERE producer_id = $2",
                now_ms, decision.producer_id,
            )
        elif how is Lookup.BY_TRANSACTIONAL_ID:
            # Two agents may race to map a new transactional id: one insert wins, the other
            # sees nothing inserted and goes round to bump the winner's epoch.
            new_id = await conn.fetchval(
                "INSERT INTO producers (transactional_id, epoch, created_at, updated_at)"
                " VALUES ($1, 0, $2, $2) ON CONFLICT (transactional_id) DO NOTHING"
                " RETURNING producer_id",
                transactional_id, now_ms,
            )
            if new_id is None:
                continue
            return int(new_id), 0
        new_id = await conn.fetchval(
            "INSERT INTO producers (transactional_id, epoch, created_at, updated_at)"
            " VALUES ($1, 0, $2, $2) RETURNING producer_id",
            transactional_id, now_ms,
        )
        return int(new_id), 0


async def _load(conn: Conn, how: Lookup, transactional_id: str | None) -> ProducerRow | None:
    if how is Lookup.BY_TRANSACTIONAL_ID:
        row = await conn.fetchrow(
            "SELECT producer_id, epoch FROM producers WHERE transactional_id = $1 FOR UPDATE",
            transactional_id,
        )
    else:
        return None
    return None if row is None else ProducerRow(int(row[0]), int(row[1]))
