"""Garbage collection that scales: the GC's listing of unreferenced files reads the two partial
indexes of garbage (migration 7), not every file, so its cost follows the garbage, not the
bucket. Checked on SQLite's query plan, and by timing nothing: the plan is what can fail."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from shoal.meta.open import open_metadata_store
from shoal.meta.sqlite_maintenance import UNREFERENCED_SQL
from shoal.meta.store import FileInfo, PendingBatch


async def test_the_unreferenced_listing_reads_only_the_garbage_indexes(tmp_path: Path) -> None:
    db = tmp_path / "metadata.db"
    meta = open_metadata_store(f"sqlite:///{db}")
    await meta.start()
    try:
        await meta.create_topic("t", 1, {})
        for i in range(300):  # live files, each with its row
            await meta.commit_file(
                FileInfo(f"live-{i}", f"segments/live-{i}.seg", 100),
                [PendingBatch("t", 0, 8, 92, 1, 0, 0, -1, -1, -1)],
            )
        await meta.commit_file(FileInfo("claim", "segments/claim.seg", 100), [])
        await meta.advance_log_start("t", 0, 1)  # releases live-0
        future = int(time.time() * 1000) + 60_000
        found = await meta.unreferenced_files(future)
        assert [f.file_id for f in found] == ["live-0", "claim"]  # in recording order
    finally:
        await meta.close()
    con = sqlite3.connect(db)
    try:
        con.execute("ANALYZE")
        rows = con.execute(f"EXPLAIN QUERY PLAN {UNREFERENCED_SQL}", (future, 10)).fetchall()
        plan = [str(row[3]) for row in rows]
    finally:
        con.close()
    text = "\n".join(plan)
    assert "USING INDEX files_released" in text, text
    assert "USING INDEX files_uncommitted" in text, text
    # Every read of `files` goes through an index: none walks the table.
    assert not [line for line in plan if line.startswith("SCAN f") and "INDEX" not in line], text
