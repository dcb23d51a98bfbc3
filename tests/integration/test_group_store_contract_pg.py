"""The GroupStore contract suite (tests/unit/test_group_store_contract.py) on PostgreSQL.

The test bodies and fixtures are that module's own, collected here again; only `db_url` is
replaced, by a fresh database on the session's throwaway PostgreSQL server.
"""

from __future__ import annotations

import pytest

from tests.unit import test_group_store_contract as contract

pytestmark = pytest.mark.postgres

open_store = contract.open_store
store = contract.store
globals().update({k: v for k, v in vars(contract).items() if k.startswith("test_")})


@pytest.fixture
def db_url(pg_url: str) -> str:
    return pg_url
