"""Storage backends the single-agent integration suite runs on.

- `embedded`: the agent's defaults (local folder for objects, SQLite for metadata).
- `s3-pg`: objects on a moto S3 server, metadata on PostgreSQL. The moto server and the
  PostgreSQL server are started once per session (fixtures `moto_s3` and `pg_server_url`, only
  when an `s3-pg` test runs); every backend instance gets its own bucket prefix and its own
  fresh database, so tests never see each other's topics.

`SHOAL_TEST_BACKENDS=embedded` (comma-separated) restricts the suite to some backends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import re
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.agent_process import AgentProcess

ALL_BACKENDS = ("embedded", "s3-pg")
_numbers = itertools.count()
T = TypeVar("T")


def selected_backends() -> list[str]:
    raw = os.environ.get("SHOAL_TEST_BACKENDS", ",".join(ALL_BACKENDS))
    chosen = [b.strip() for b in raw.split(",") if b.strip()]
    unknown = set(chosen) - set(ALL_BACKENDS)
    if unknown:
        raise ValueError(f"SHOAL_TEST_BACKENDS: unknown backends {sorted(unknown)}")
    return chosen


@dataclass(frozen=True)
class Backend:
    """Agent flags and environment for one backend instance (shared by every agent process of
    one test, so a restarted agent sees what the previous one wrote)."""

    kind: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    bucket: str | None = None
    metadata: str | None = None


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when the caller's thread already
    runs an event loop (async tests): a worker thread gets a loop of its own."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(60)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def create_database(server_url: str, name: str) -> str:
    import asyncpg

    async def run() -> None:
        admin = await asyncpg.connect(server_url, timeout=10)
        try:
            strategy = " STRATEGY FILE_COPY" if admin.get_server_version().major >= 15 else ""
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0{strategy}')
        finally:
            await admin.close()

    _run_sync(run())
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    import asyncpg

    async def run() -> None:
        admin = await asyncpg.connect(server_url, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    _run_sync(run())


def unique_name(request: pytest.FixtureRequest) -> str:
    """A short name unique in this session, readable in logs: test name + counter."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{base}-{os.getpid()}-{next(_numbers)}"


@contextlib.contextmanager
def open_backend(kind: str, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A fresh instance of backend `kind`. Session servers are requested lazily here, so a run
    restricted to `embedded` never starts moto or PostgreSQL."""
    if kind == "embedded":
        yield Backend(kind)
        return
    if kind != "s3-pg":
        raise ValueError(f"unknown backend {kind!r}")
    from tests.s3_server import S3Server

    s3: S3Server = request.getfixturevalue("moto_s3")
    pg_server_url: str = request.getfixturevalue("pg_server_url")
    name = unique_name(request)
    database = "shoal_" + name.replace("-", "_")
    metadata = create_database(pg_server_url, database)
    bucket = s3.url(name)
    try:
        yield Backend(
            kind,
            ["--bucket", bucket, "--metadata", metadata],
            s3.env(),
            bucket,
            metadata,
        )
    finally:
        drop_database(pg_server_url, database)


@contextlib.contextmanager
def agent_on_backend(
    kind: str, request: pytest.FixtureRequest, data_dir: Path, args: Sequence[str] = ()
) -> Iterator[AgentProcess]:
    """One agent process on a fresh instance of backend `kind`, stopped cleanly at the end: the
    agent a module's tests share (a start costs more than most of their steps)."""
    with open_backend(kind, request) as backend:
        proc = AgentProcess(data_dir, [*backend.args, *args], env=backend.env).start()
        try:
            yield proc
        finally:
            assert proc.stop() == 0, proc.log_tail()
