from __future__ import annotations

import pytest
from kio.schema.errors import ErrorCode

from shoal.protocol import errors

CONSTANTS = {
    name: value for name, value in vars(errors).items() if name.isupper() and isinstance(value, int)
}


def test_constants_cover_what_the_agent_uses() -> None:
    for name in (
        "NONE",
        "CORRUPT_MESSAGE",
        "INVALID_RECORD",
        "MESSAGE_TOO_LARGE",
        "UNKNOWN_TOPIC_ID",
        "PRODUCER_FENCED",
        "NOT_COORDINATOR",
        "UNSUPPORTED_VERSION",
        "KAFKA_STORAGE_ERROR",
    ):
        assert name in CONSTANTS
    assert len(CONSTANTS) >= 60


@pytest.mark.parametrize(("name", "value"), sorted(CONSTANTS.items()))
def test_constant_matches_kio(name: str, value: int) -> None:
    assert ErrorCode[name.lower()].value == value


def test_error_name_and_retriable() -> None:
    assert errors.error_name(errors.NOT_COORDINATOR) == "NOT_COORDINATOR"
    assert errors.error_name(31000) == "UNKNOWN(31000)"
    assert errors.is_retriable(errors.NOT_COORDINATOR)
    assert errors.is_retriable(errors.CORRUPT_MESSAGE)
    assert not errors.is_retriable(errors.INVALID_RECORD)
    assert not errors.is_retriable(31000)
