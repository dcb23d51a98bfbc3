"""handlers/topic_lookup.py: one rule for finding (and auto-creating) a request's topic,
over a real SQLite metadata store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from shoal.handlers.topic_lookup import auto_create_partitions, find_or_create_topic, find_topic
from shoal.meta.open import open_metadata_store
from shoal.meta.topic_cache import TopicCache
from shoal.protocol import errors
from shoal.settings import Settings


@pytest.fixture
async def topics() -> AsyncIterator[TopicCache]:
    meta = open_metadata_store("sqlite:///:memory:")
    await meta.start()
    await meta.create_topic("known", 3, {})
    try:
        yield TopicCache(meta)
    finally:
        await meta.close()


async def test_find_by_name_and_by_id(topics: TopicCache) -> None:
    code, info = await find_topic(topics, "known", None)
    assert code == errors.NONE and info is not None and info.partitions == 3
    assert await find_topic(topics, None, info.topic_id) == (errors.NONE, info)
    assert await find_topic(topics, "nope", None) == (errors.UNKNOWN_TOPIC_OR_PARTITION, None)
    assert await find_topic(topics, None, uuid.uuid4()) == (errors.UNKNOWN_TOPIC_ID, None)
    # A version that names topics by id, sent the zero id (kio reads it as None).
    assert await find_topic(topics, None, None) == (errors.UNKNOWN_TOPIC_ID, None)


async def test_find_never_creates(topics: TopicCache) -> None:
    await find_topic(topics, "fresh", None)
    assert await topics.get("fresh") is None


async def test_find_or_create_checks_the_name_first(topics: TopicCache) -> None:
    for bad in ("", ".", "..", "a/b", "x" * 250, None):
        found = await find_or_create_topic(topics, bad, None, create_partitions=2)
        assert found == (errors.INVALID_TOPIC_EXCEPTION, None), bad
    assert await topics.get("..") is None


async def test_find_or_create_creates_only_when_asked(topics: TopicCache) -> None:
    off = await find_or_create_topic(topics, "fresh", None, create_partitions=None)
    assert off == (errors.UNKNOWN_TOPIC_OR_PARTITION, None)
    code, info = await find_or_create_topic(topics, "fresh", None, create_partitions=2)
    assert code == errors.NONE and info is not None and info.partitions == 2


async def test_find_or_create_by_id_alone(topics: TopicCache) -> None:
    info = await topics.get("known")
    assert info is not None
    assert await find_or_create_topic(topics, None, info.topic_id, create_partitions=1) == (
        errors.NONE,
        info,
    )
    unknown = await find_or_create_topic(topics, None, uuid.uuid4(), create_partitions=1)
    assert unknown == (errors.UNKNOWN_TOPIC_ID, None)


def test_auto_create_partitions_follows_broker_and_request() -> None:
    assert auto_create_partitions(Settings(default_partitions=4)) == 4
    assert auto_create_partitions(Settings(default_partitions=4), False) is None
    assert auto_create_partitions(Settings(auto_create_topics=False)) is None
