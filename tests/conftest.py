"""Fixtures shared by all tests: a throwaway PostgreSQL server (started lazily, once per session,
only if a test asks for it), a fresh database per test on it, and the metadata-store backends
every contract suite runs on (`db_url`, `open_store`, `store`)."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from shoal.meta.open import open_metadata_store
from shoal.meta.store import MetadataStore
from tests.pg_server import PgServer, PgUnavailable

_db_numbers = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgres: needs a PostgreSQL server (started by tests/pg_server.py)"
    )


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a database on a PostgreSQL server we may create databases on: the one named by
    SHOAL_TEST_PG_URL, or a throwaway server run for this session."""
    external = os.environ.get("SHOAL_TEST_PG_URL")
    if external:
        yield external
        return
    try:
        server = PgServer().start()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server.url
    finally:
        server.destroy()


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@pytest.fixture
async def pg_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test (CREATE DATABASE from template0), dropped after.
    FILE_COPY: with fsync off it is about twice as fast as the default WAL_LOG strategy."""
    name = f"shoal_test_{os.getpid()}_{next(_db_numbers)}"
    admin = await asyncpg.connect(pg_server_url, timeout=10)
    try:
        strategy = " STRATEGY FILE_COPY" if admin.get_server_version().major >= 15 else ""
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0{strategy}')
    finally:
        await admin.close()
    try:
        yield _with_database(pg_server_url, name)
    finally:
        admin = await asyncpg.connect(pg_server_url, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


META_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
Opener = Callable[[], Awaitable[MetadataStore]]


@pytest.fixture(params=META_BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh, empty metadata database, once per backend: every test that asks for it
    (the contract suites of tests/unit/test_*contract*.py, the GC's) runs on SQLite and on
    PostgreSQL. A backend joins by adding its name here; `-m "not postgres"` leaves PostgreSQL
    out."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/metadata.db"
    if request.param == "postgresql":
        return cast(str, request.getfixturevalue("pg_url"))
    raise AssertionError(request.param)


@pytest.fixture
async def open_store(db_url: str) -> AsyncIterator[Opener]:
    """Opens (and closes after the test) any number of started stores on the same database, as
    several agents would."""
    opened: list[MetadataStore] = []

    async def opener() -> MetadataStore:
        store = open_metadata_store(db_url)
        await store.start()
        opened.append(store)
        return store

    yield opener
    for s in opened:
        await s.close()


@pytest.fixture
async def store(open_store: Opener) -> MetadataStore:
    return await open_store()
