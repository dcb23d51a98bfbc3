"""Metadata-store commit throughput: commits/s with 1 partition per commit, index rows/s with 100
partitions per commit, sequential and with concurrent committers.

    .venv/bin/python bench/meta_commits.py                      # throwaway durable PostgreSQL
    .venv/bin/python bench/meta_commits.py --url sqlite:////tmp/m.db
    .venv/bin/python bench/meta_commits.py --url postgresql://... --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from shoal.meta.open import open_metadata_store
from shoal.meta.store import FileInfo, MetadataStore, PendingBatch


def _batches(topic: str, partitions: range, pid: int) -> list[PendingBatch]:
    # Not idempotent (pid -1) unless asked: idempotent commits add the producer-state read.
    return [PendingBatch(topic, p, p * 100, 100, 10, 0, 0, pid, 0 if pid >= 0 else -1, -1)
            for p in partitions]


async def _run(store: MetadataStore, topic: str, partitions: int, workers: int,
               seconds: float, idempotent: bool, own: bool) -> tuple[int, float]:
    commits = 0
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal commits
        # own: each committer writes its own partition (no lock wait between committers).
        targets = range(n, n + 1) if own else range(partitions)
        pid = (await store.init_producer(None, -1, -1))[0] if idempotent else -1
        seq = 0
        while time.perf_counter() < deadline:
            fid = uuid.uuid4().hex
            batches = _batches(topic, targets, pid)
            if idempotent:
                batches = [PendingBatch(b.topic, b.partition, b.byte_pos, b.byte_len,
                                        b.record_count, 0, 0, pid, 0, seq) for b in batches]
                seq += 10
            out = await store.commit_file(FileInfo(fid, fid, 10_000), batches)
            assert all(o.error_code == 0 for o in out), out
            commits += 1

    start = time.perf_counter()
    await asyncio.gather(*[worker(n) for n in range(workers)])
    return commits, time.perf_counter() - start


async def bench(url: str, seconds: float) -> None:
    store = open_metadata_store(url)
    await store.start()
    try:
        run = uuid.uuid4().hex[:6]
        print(f"url={url.split('@')[-1]}")
        for partitions, workers, idem, own in [
            (1, 1, False, False), (1, 8, False, False), (1, 8, True, False), (1, 8, False, True),
            (100, 1, False, False), (100, 4, False, False), (100, 4, True, False),
        ]:
            topic = f"bench-{run}-{partitions}-{workers}-{int(idem)}-{int(own)}"
            await store.create_topic(topic, max(partitions, workers), {})
            commits, elapsed = await _run(store, topic, partitions, workers, seconds, idem, own)
            rate = commits / elapsed
            where = "own partition each" if own else "same partitions"
            print(f"partitions/commit={partitions:3d} committers={workers} ({where:18})"
                  f" idempotent={idem!s:5}  {rate:7.0f} commits/s  {rate * partitions:7.0f}"
                  f" rows/s  {1000 * workers / rate:6.2f} ms/commit")
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="metadata URL (default: a throwaway durable PostgreSQL)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--no-notify", action="store_true")
    args = parser.parse_args()
    if args.url:
        asyncio.run(bench(args.url, args.seconds))
        return
    from tests.pg_server import PgServer

    with PgServer(durable=True) as server, tempfile.TemporaryDirectory():
        query = "?pool_max=10" + ("&notify=off" if args.no_notify else "")
        asyncio.run(bench(server.url + query, args.seconds))


if __name__ == "__main__":
    main()
