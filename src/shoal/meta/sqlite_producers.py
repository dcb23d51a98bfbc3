"""SQLite I/O of InitProducerId, on the store's worker thread (see `sqlite.py`): looks up the
row `producers.lookup` names and carries out `producers.decide_init` in one write transaction.
The PostgreSQL twin is `postgres_producers`."""

from __future__ import annotations

import sqlite3

from shoal.meta.producers import Action, Lookup, ProducerRow, decide_init, lookup
from shoal.meta.sqlite_txn import write_txn


def init_producer(
    conn: sqlite3.Connection,
    transactional_id: str | None,
    producer_id: int,
    producer_epoch: int,
    now_ms: int,
) -> tuple[int, int]:
    with write_txn(conn):
        current = _load(conn, lookup(transactional_id), transactional_id)
        decision = decide_init(transactional_id, producer_id, producer_epoch, current)
        if decision.action is Action.BUMP:
            conn.execute(
                "UPDATE producers SET epoch = ?, updated_at = ? WHERE producer_id = ?",
                (decision.epoch, now_ms, decision.producer_id),
            )
            return decision.producer_id, decision.epoch
        if decision.action is Action.RETIRE_AND_ALLOCATE:
            # Release the transactional id from the exhausted producer id before re-mapping it.
            conn.execute(
                "UPDATE producers SET transactional_id = NULL, updated_at = ?"
                " WHERE producer_id = ?",
                (now_ms, decision.producer_id),
            )
        cur = conn.execute(
            "INSERT INTO producers (transactional_id, epoch, created_at, updated_at)"
            " VALUES (?, 0, ?, ?)",
            (transactional_id, now_ms, now_ms),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid), 0


def _load(
    conn: sqlite3.Connection, how: Lookup, transactional_id: str | None
) -> ProducerRow | None:
    if how is Lookup.BY_TRANSACTIONAL_ID:
        row = conn.execute(
            "SELECT producer_id, epoch FROM producers WHERE transactional_id = ?",
            (transactional_id,),
        ).fetchone()
    else:
        return None
    return None if row is None else ProducerRow(int(row[0]), int(row[1]))
