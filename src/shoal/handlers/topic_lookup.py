"""Finding the topic a request names, by name or by id, and auto-creating it: one rule for
Produce, Fetch and Metadata, with Kafka's error codes.

- By id (the versions that name topics by id, or a Metadata topic given only by id): unknown or
  missing id -> UNKNOWN_TOPIC_ID.
- By name: a name Kafka would refuse -> INVALID_TOPIC_EXCEPTION; unknown -> created when the
  caller passes `create_partitions`, else UNKNOWN_TOPIC_OR_PARTITION.
"""

from __future__ import annotations

import uuid

from shoal.handlers.topic_names import is_valid_topic_name
from shoal.meta.store import TopicInfo
from shoal.meta.topic_cache import TopicCache
from shoal.protocol import errors
from shoal.settings import Settings

Found = tuple[int, TopicInfo | None]  # (error code, the topic when the code is NONE)


async def find_topic(topics: TopicCache, name: str | None, topic_id: uuid.UUID | None) -> Found:
    """The topic named by `name` or, when there is none, by `topic_id`; never creates."""
    if name is not None:
        info = await topics.get(name)
        return (errors.NONE, info) if info else (errors.UNKNOWN_TOPIC_OR_PARTITION, None)
    return await _by_id(topics, topic_id)


async def find_or_create_topic(
    topics: TopicCache,
    name: str | None,
    topic_id: uuid.UUID | None,
    *,
    create_partitions: int | None,
) -> Found:
    """As `find_topic`, but a name is checked first and an unknown one created with
    `create_partitions` partitions when that is not None. A topic given by id alone (no name)
    is looked up by id."""
    if name is None and topic_id is not None and topic_id.int != 0:
        return await _by_id(topics, topic_id)
    if not is_valid_topic_name(name):
        return errors.INVALID_TOPIC_EXCEPTION, None
    assert name is not None
    info = await topics.get(name)
    if info is None and create_partitions is not None:
        info = await topics.get_or_create(name, create_partitions)
    return (errors.NONE, info) if info else (errors.UNKNOWN_TOPIC_OR_PARTITION, None)


def auto_create_partitions(settings: Settings, allowed_by_request: bool = True) -> int | None:
    """Partitions of an auto-created topic, or None when auto-creation is off (Kafka's
    auto.create.topics.enable, and the request's allow_auto_topic_creation)."""
    if settings.auto_create_topics and allowed_by_request:
        return settings.default_partitions
    return None


async def _by_id(topics: TopicCache, topic_id: uuid.UUID | None) -> Found:
    info = None if topic_id is None else await topics.get_by_id(topic_id)
    return (errors.NONE, info) if info else (errors.UNKNOWN_TOPIC_ID, None)
