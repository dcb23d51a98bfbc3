"""Metadata store contract, continued: concurrent writers on one store, and store URLs.

Same backends as every contract suite (the `db_url` and `open_store` fixtures of
tests/conftest.py); helpers from `test_meta_contract.py`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from shoal.meta.migrations import parse_migrations
from shoal.meta.open import open_metadata_store
from shoal.meta.store import (
    BatchOutcome,
    MetadataError,
    MetadataStore,
)
from tests.unit.test_meta_contract import Opener, all_offsets, batch, new_file

# -- concurrency ----------------------------------------------------------------------------


def assert_dense(offsets: list[tuple[int, int]], records: int) -> None:
    expected = 0
    for base, last in offsets:
        assert base == expected, offsets
        expected = last + 1
    assert expected == records


async def test_two_stores_commit_concurrently_without_reusing_offsets(
    open_store: Opener,
) -> None:
    a = await open_store()
    b = await open_store()
    await a.create_topic("t", 3, {})
    sizes = [1, 2, 3]

    async def writer(s: MetadataStore, n: int) -> list[BatchOutcome]:
        out: list[BatchOutcome] = []
        for i in range(n):
            out += await s.commit_file(
                new_file(), [batch("t", (i + p) % 3, sizes[p]) for p in range(3)]
            )
        return out

    results = await asyncio.gather(writer(a, 60), writer(b, 60), writer(a, 60), writer(b, 60))
    assert all(o.error_code == 0 for r in results for o in r)
    for p in range(3):
        assert_dense(await all_offsets(b, "t", p), records=240 * sum(sizes) // 3)


async def test_concurrent_group_commits_touching_partitions_in_opposite_orders(
    open_store: Opener,
) -> None:
    """Two stores commit groups of files whose partitions come in opposite orders (a's first
    file writes partition 2 and its second partition 0; b's the other way round). Locking file
    by file could deadlock two such transactions; every commit must succeed with dense
    offsets."""
    a = await open_store()
    b = await open_store()
    await a.create_topic("t", 3, {})

    async def writer(s: MetadataStore, order: list[int], rounds: int) -> list[BatchOutcome]:
        out: list[BatchOutcome] = []
        for _ in range(rounds):
            files = [(new_file(), [batch("t", p, 2)]) for p in order]
            for outcomes in await s.commit_files(files):
                out += outcomes
        return out

    results = await asyncio.gather(
        writer(a, [2, 1, 0], 40), writer(b, [0, 1, 2], 40),
        writer(a, [1, 2, 0], 40), writer(b, [0, 2, 1], 40),
    )  # fmt: skip
    assert all(o.error_code == 0 for r in results for o in r)
    for p in range(3):
        assert_dense(await all_offsets(a, "t", p), records=4 * 40 * 2)


_CHILD = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from shoal.meta.open import open_metadata_store
    from shoal.meta.store import FileInfo, PendingBatch

    async def main(url: str, n: int) -> None:
        store = open_metadata_store(url)
        await store.start()
        for i in range(n):
            fid = uuid.uuid4().hex
            batches = [PendingBatch("t", p, 0, 10, 1 + (i + p) % 3, 0, 0, -1, -1, -1)
                       for p in range(2)]
            out = await store.commit_file(FileInfo(fid, fid, 10), batches)
            assert all(o.error_code == 0 for o in out), out
        await store.close()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_processes_commit_concurrently_without_reusing_offsets(
    db_url: str, open_store: Opener
) -> None:
    store = await open_store()
    await store.create_topic("t", 2, {})
    children = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", _CHILD, db_url, "80")
        for _ in range(3)
    ]
    local = asyncio.gather(
        *[store.commit_file(new_file(), [batch("t", 0, 2), batch("t", 1, 2)]) for _ in range(40)]
    )
    codes = await asyncio.gather(*[c.wait() for c in children])
    await local
    assert codes == [0, 0, 0]
    for p in range(2):
        per_child = sum(1 + (i + p) % 3 for i in range(80))
        assert_dense(await all_offsets(store, "t", p), records=3 * per_child + 40 * 2)


# -- URLs (sqlite specifics of open_metadata_store) -----------------------------------------


def test_open_rejects_unknown_schemes() -> None:
    for url in ("mysql://x/y", "nourl", "sqlite://host/x.db", "sqlite:///db?colour=red"):
        with pytest.raises(ValueError):
            open_metadata_store(url)


async def test_open_memory_and_four_slash_urls(tmp_path: Path) -> None:
    mem = open_metadata_store("sqlite:///:memory:")
    await mem.start()
    await mem.create_topic("t", 1, {})
    assert (await mem.commit_file(new_file(), [batch()]))[0].base_offset == 0
    await mem.close()
    path = tmp_path / "four.db"
    four = open_metadata_store(f"sqlite:///{path}?synchronous=normal")
    await four.start()
    await four.create_topic("t", 1, {})
    await four.close()
    assert path.exists()


def test_parse_migrations_requires_numbered_sections() -> None:
    text = "-- migration: 1\nCREATE TABLE a (x INT);\n-- note\nCREATE TABLE b (y INT);\n"
    assert parse_migrations(text) == ((1, ("CREATE TABLE a (x INT)", "CREATE TABLE b (y INT)")),)
    with pytest.raises(ValueError):
        parse_migrations("-- migration: 2\nCREATE TABLE a (x INT);\n")


async def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    first = open_metadata_store(f"sqlite:///{path}")
    await first.start()
    await first.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 0)")
    conn.close()
    newer = open_metadata_store(f"sqlite:///{path}")
    with pytest.raises(MetadataError, match="newer"):
        await newer.start()
