"""SQLite's worker lanes (issue 12 item 8): a heartbeat, a commit or a Fetch's index read must
not queue behind a scan in the same process. On one worker thread, a MAX_TIMESTAMP lookup over a
large partition held every other call for its whole length; a few seconds of it made this
agent's heartbeat late and its peers dropped it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.meta.agent_store import AgentInfo
from shoal.meta.sqlite import SqliteMetadataStore
from shoal.meta.store import FileInfo, PendingBatch

ROWS = 1_000_000


@pytest.fixture
async def big(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    """A store whose partition t-0 has ROWS index rows (written directly: committing them
    one by one would take minutes) and one registered agent."""
    path = str(tmp_path / "m.db")
    store = SqliteMetadataStore(path, synchronous="NORMAL")
    await store.start()
    await store.create_topic("t", 2, {})
    await store.commit_file(FileInfo("f0", "segments/f0.seg", 100), [])
    await store.register_agent(_agent(), None, 0)
    await store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO batches SELECT 't', 0, i, i, (SELECT id FROM files), 0, 100, 1,"
            " i % 100000, -1, -1, -1 FROM n",
            (ROWS - 1,),
        )
        conn.execute("UPDATE partitions SET next_offset = ? WHERE partition = 0", (ROWS,))
    conn.close()
    store = SqliteMetadataStore(path, synchronous="NORMAL")
    await store.start()
    yield store
    await store.close()


def _agent() -> AgentInfo:
    return AgentInfo("a", 0, "127.0.0.1", 9092, 8080, "z", "g", ("proxy",), 0, 0)


async def test_a_scan_does_not_hold_up_heartbeats_commits_or_index_reads(
    big: SqliteMetadataStore,
) -> None:
    scan = asyncio.create_task(big.max_timestamp_offset("t", 0))
    await asyncio.sleep(0.01)  # let the scan reach its worker
    assert not scan.done()
    assert await big.heartbeat_agent("a", 1)
    assert [a.agent_id for a in await big.list_agents(0)] == ["a"]
    batch = PendingBatch("t", 1, 0, 10, 1, 0, 0, -1, -1, -1)
    committed = await big.commit_file(FileInfo("f1", "segments/f1.seg", 10), [batch])
    assert committed[0].error_code == 0
    assert len(await big.read_batches("t", 0, 500_000, 1000, 5)) == 5
    # Each of those answered while the scan still ran: on one worker, each would have waited.
    assert not scan.done()
    found = await scan
    assert found is not None and found.timestamp == 99_999
