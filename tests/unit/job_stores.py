"""The stores the unit tests of the background jobs run over: a local-folder object store and
the real metadata store of the test's `db_url` (SQLite, PostgreSQL). A test module takes the
fixture with `env = job_stores.env`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.meta.open import open_metadata_store
from shoal.meta.store import MetadataStore
from shoal.objstore.store import ObjectStore

Stores = tuple[ObjectStore, MetadataStore]


@pytest.fixture
async def env(tmp_path: Path, db_url: str) -> AsyncIterator[Stores]:
    meta = open_metadata_store(db_url)
    await meta.start()
    try:
        yield ObjectStore.from_url(f"file://{tmp_path}/objects", 5000), meta
    finally:
        await meta.close()
