"""SQLite producer-id transactions (InitProducerId), on the store's worker thread."""

from __future__ import annotations

import sqlite3

from shoal.meta.sql_common import EPOCH_MAX
from shoal.meta.sqlite_txn import now_ms as _now_ms
from shoal.meta.sqlite_txn import write_txn as _write_txn
from shoal.meta.store import ProducerFencedError


def _init_producer(
    conn: sqlite3.Connection, transactional_id: str | None, producer_id: int, producer_epoch: int
) -> tuple[int, int]:
    """Kafka's InitProducerId decisions.

    - No transactional id: if (producer_id, epoch) names a live id at that epoch (KIP-360),
      bump its epoch; otherwise allocate a new id at epoch 0 (Kafka always hands out a fresh
      id here, so a mismatch is not an error).
    - Transactional id: the first call maps it to a new id at epoch 0; later calls bump the
      epoch, fencing older instances. If (producer_id, epoch) is given and is not the current
      pair, raise ProducerFencedError.
    - An epoch that cannot be bumped any more (EPOCH_MAX) moves to a new id at epoch 0.
    """
    now = _now_ms()
    with _write_txn(conn):
        if transactional_id is None:
            if producer_id >= 0:
                row = conn.execute(
                    "SELECT epoch FROM producers"
                    " WHERE producer_id = ? AND transactional_id IS NULL",
                    (producer_id,),
                ).fetchone()
                if row is not None and int(row[0]) == producer_epoch:
                    return _bump(conn, producer_id, producer_epoch, None, now)
            return _new_producer(conn, None, now)
        row = conn.execute(
            "SELECT producer_id, epoch FROM producers WHERE transactional_id = ?",
            (transactional_id,),
        ).fetchone()
        if row is None:
            return _new_producer(conn, transactional_id, now)
        current_id, current_epoch = int(row[0]), int(row[1])
        if producer_id >= 0 and (producer_id, producer_epoch) != (current_id, current_epoch):
            raise ProducerFencedError(
                f"transactional id {transactional_id!r} is at producer {current_id} epoch"
                f" {current_epoch}, not {producer_id}/{producer_epoch}"
            )
        return _bump(conn, current_id, current_epoch, transactional_id, now)


def _new_producer(
    conn: sqlite3.Connection, transactional_id: str | None, now: int
) -> tuple[int, int]:
    cur = conn.execute(
        "INSERT INTO producers (transactional_id, epoch, created_at, updated_at)"
        " VALUES (?, 0, ?, ?)",
        (transactional_id, now, now),
    )
    assert cur.lastrowid is not None
    return int(cur.lastrowid), 0


def _bump(
    conn: sqlite3.Connection, producer_id: int, epoch: int, transactional_id: str | None, now: int
) -> tuple[int, int]:
    if epoch >= EPOCH_MAX:
        # Release the transactional id from the exhausted producer id before re-mapping it.
        conn.execute(
            "UPDATE producers SET transactional_id = NULL, updated_at = ? WHERE producer_id = ?",
            (now, producer_id),
        )
        return _new_producer(conn, transactional_id, now)
    conn.execute(
        "UPDATE producers SET epoch = ?, updated_at = ? WHERE producer_id = ?",
        (epoch + 1, now, producer_id),
    )
    return producer_id, epoch + 1
