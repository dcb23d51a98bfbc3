"""CreateTopics, DeleteTopics and CreatePartitions.

There is no replication and no partition placement: a topic is a row in the metadata store and
any agent serves any partition. Replication factors and replica assignments are therefore
checked for shape (so that client mistakes still get Kafka's errors) and otherwise ignored; the
replication factor is reported as 1, the same as the single replica that Metadata shows.

Versions served: CreateTopics 2-7, DeleteTopics 1-6, CreatePartitions 0-3.
- CreateTopics v5: flexible; the answer carries the topic's configs, partitions and replication
  factor (KIP-525); v7: the topic id.
- DeleteTopics v4: flexible; v5: an error message; v6: topics by name or id.
- CreatePartitions v2: flexible.
"""

from __future__ import annotations

import uuid
from typing import Any

from kio.schema.create_partitions.v3.response import (
    CreatePartitionsResponse,
    CreatePartitionsTopicResult,
)
from kio.schema.create_topics.v7.response import (
    CreatableTopicConfigs,
    CreatableTopicResult,
    CreateTopicsResponse,
)
from kio.schema.delete_topics.v6.response import DeletableTopicResult, DeleteTopicsResponse
from kio.schema.errors import ErrorCode

from shoal.handlers.base import RequestContext, api
from shoal.handlers.config_defaults import topic_config_entries, validate_topic_configs
from shoal.handlers.duplicates import without_repeats
from shoal.handlers.services import Services
from shoal.handlers.topic_names import is_valid_topic_name
from shoal.meta.store import (
    InvalidPartitionsError,
    MetadataError,
    TopicExistsError,
    TopicInfo,
    UnknownTopicError,
)
from shoal.protocol.apis import ApiKey
from shoal.protocol.errors import ApiError
from shoal.protocol.messages import ZERO_THROTTLE, Messages, error

# Every partition costs index rows and long-poll bookkeeping; a typo like 1000000 must not
# create a topic that every Metadata response then has to list.
PARTITIONS_MAX = 10_000
REPORTED_REPLICATION_FACTOR = 1
ZERO_UUID = uuid.UUID(int=0)
# kio writes None as the all-zero UUID (and reads it back as None): "no topic id".
NO_TOPIC_ID = None


DUPLICATE_NAME = "Duplicate topic name."
DUPLICATE_ID = "Duplicate topic id."


# -- CreateTopics -----------------------------------------------------------------------------


@api(ApiKey.CREATE_TOPICS, 2, 7)
async def handle_create_topics(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    topics, repeated = without_repeats(req.topics, lambda t: str(t.name))
    collisions = _Collisions(svc)
    results = []
    for topic in topics:
        try:
            info = await _create_one(svc, topic, bool(req.validate_only), collisions)
        except ApiError as refused:
            results.append(_create_error(msgs, topic.name, error(refused.code), refused.message))
        except MetadataError as exc:
            results.append(
                _create_error(msgs, topic.name, ErrorCode.unknown_server_error, str(exc))
            )
        else:
            results.append(_create_ok(msgs, svc, info, bool(req.validate_only)))
    for name in repeated:
        results.append(_create_error(msgs, name, ErrorCode.invalid_request, DUPLICATE_NAME))
    return msgs.make(CreateTopicsResponse, throttle_time=ZERO_THROTTLE, topics=tuple(results))


async def _create_one(
    svc: Services, topic: Any, validate_only: bool, collisions: _Collisions
) -> TopicInfo:
    name: str = topic.name
    if not is_valid_topic_name(name):
        raise ApiError(
            ErrorCode.invalid_topic_exception,
            f"Topic name {name!r} is illegal: it must be 1-249 characters of [a-zA-Z0-9._-], "
            "and not '.' or '..'.",
        )
    if await svc.meta.get_topic(name) is not None:
        raise ApiError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.")
    await collisions.check(name)
    partitions = _partition_count(svc, topic)
    configs: dict[str, str | None] = {c.name: c.value for c in topic.configs}
    problem = validate_topic_configs(configs)
    if problem is not None:
        raise ApiError(ErrorCode.invalid_config, problem)
    checked = {k: v for k, v in configs.items() if v is not None}
    if validate_only:
        return TopicInfo(name=name, topic_id=ZERO_UUID, partitions=partitions, configs=checked)
    try:
        info = await svc.meta.create_topic(name, partitions, checked)
    except TopicExistsError:
        raise ApiError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.") from None
    finally:
        svc.topics.invalidate(name)
    collisions.add(name)
    return info


class _Collisions:
    """Kafka refuses names that differ only in '.' versus '_': both map to the same metric
    names, so clients' metrics for the two topics would mix. The topic list is read at most
    once per request, and only if a name in it could collide."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._unified: dict[str, str] | None = None

    async def check(self, name: str) -> None:
        if "." not in name and "_" not in name:
            return
        if self._unified is None:
            topics = await self._svc.meta.list_topics()
            self._unified = {_unify(t.name): t.name for t in topics}
        other = self._unified.get(_unify(name))
        if other is not None and other != name:
            raise ApiError(
                ErrorCode.invalid_topic_exception,
                f"Topic '{name}' collides with existing topic: {other}",
            )

    def add(self, name: str) -> None:
        if self._unified is not None:
            self._unified[_unify(name)] = name


def _unify(name: str) -> str:
    return name.replace(".", "_")


def _partition_count(svc: Services, topic: Any) -> int:
    rf = int(topic.replication_factor)
    if topic.assignments:
        if topic.num_partitions != -1 or rf != -1:
            raise ApiError(
                ErrorCode.invalid_request,
                "Both numPartitions or replicationFactor and replicasAssignments were set. "
                "Both cannot be used at the same time.",
            )
        indexes = sorted(int(a.partition_index) for a in topic.assignments)
        if indexes != list(range(len(indexes))):
            raise ApiError(
                ErrorCode.invalid_replica_assignment,
                "Partitions should be numbered consecutively from 0 in the replica assignment.",
            )
        if any(not a.broker_ids for a in topic.assignments):
            raise ApiError(
                ErrorCode.invalid_replica_assignment, "A replica assignment has no brokers."
            )
        partitions = len(indexes)
    else:
        if rf == 0 or rf < -1:
            raise ApiError(
                ErrorCode.invalid_replication_factor,
                "Replication factor must be larger than 0, or -1 to use the default value.",
            )
        partitions = int(topic.num_partitions)
        if partitions == -1:
            partitions = svc.settings.default_partitions
        elif partitions <= 0:
            raise ApiError(
                ErrorCode.invalid_partitions,
                "Number of partitions must be larger than 0, or -1 to use the default value.",
            )
    if partitions > PARTITIONS_MAX:
        raise ApiError(
            ErrorCode.invalid_partitions,
            f"Number of partitions {partitions} is above the limit of {PARTITIONS_MAX}.",
        )
    return partitions


def _create_ok(msgs: Messages, svc: Services, info: TopicInfo, validate_only: bool) -> Any:
    if not msgs.has(CreatableTopicResult, "configs"):  # before v5
        return msgs.make(CreatableTopicResult, name=info.name, error_code=ErrorCode.none,
                     error_message=None)  # fmt: skip
    configs = tuple(
        msgs.make(
            CreatableTopicConfigs,
            name=entry.name,
            value=entry.value,
            read_only=entry.read_only,
            config_source=int(entry.source),
            is_sensitive=entry.is_sensitive,
        )
        for entry in topic_config_entries(info.configs, svc.settings)
    )
    return msgs.make(
        CreatableTopicResult,
        name=info.name,
        topic_id=NO_TOPIC_ID if validate_only else info.topic_id,
        error_code=ErrorCode.none,
        error_message=None,
        num_partitions=info.partitions,
        replication_factor=REPORTED_REPLICATION_FACTOR,
        configs=configs,
    )


def _create_error(msgs: Messages, name: str, code: ErrorCode, message: str | None) -> Any:
    return msgs.make(
        CreatableTopicResult,
        name=name,
        topic_id=NO_TOPIC_ID,
        error_code=code,
        error_message=message,
        num_partitions=-1,
        replication_factor=-1,
        configs=(),
    )


# -- DeleteTopics -----------------------------------------------------------------------------


@api(ApiKey.DELETE_TOPICS, 1, 6)
async def handle_delete_topics(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    wanted: list[tuple[str | None, uuid.UUID | None]]
    if hasattr(req, "topics"):  # v6+: by name or by id
        wanted = [(t.name, t.topic_id if t.topic_id != ZERO_UUID else None) for t in req.topics]
    else:
        wanted = [(name, None) for name in req.topic_names]
    unique, repeated = without_repeats(wanted, _delete_key)

    results = []
    for name, topic_id in unique:
        shown, shown_id = name, topic_id
        try:
            if name is not None and topic_id is not None:
                raise ApiError(
                    ErrorCode.invalid_request, "You may not specify both topic name and topic id."
                )
            if topic_id is not None:
                shown = await _delete_by_id(svc, topic_id)
            elif name is not None:
                shown_id = await _delete_by_name(svc, name)
            else:
                raise ApiError(ErrorCode.invalid_request, "Neither topic name nor id was given.")
        except ApiError as refused:
            results.append(
                _delete_result(msgs, shown, shown_id, error(refused.code), refused.message)
            )
        except MetadataError as exc:
            results.append(
                _delete_result(msgs, shown, shown_id, ErrorCode.unknown_server_error, str(exc))
            )
        else:
            results.append(_delete_result(msgs, shown, shown_id, ErrorCode.none, None))
    invalid = ErrorCode.invalid_request
    for key in repeated:
        if isinstance(key, uuid.UUID):
            results.append(_delete_result(msgs, None, key, invalid, DUPLICATE_ID))
        else:
            results.append(_delete_result(msgs, str(key), None, invalid, DUPLICATE_NAME))
    return msgs.make(DeleteTopicsResponse, throttle_time=ZERO_THROTTLE, responses=tuple(results))


def _delete_key(wanted: tuple[str | None, uuid.UUID | None]) -> str | uuid.UUID | None:
    """What names a DeleteTopics entry: its id if it has one, else its name."""
    name, topic_id = wanted
    return topic_id if topic_id is not None else name


async def _delete_by_name(svc: Services, name: str) -> uuid.UUID | None:
    """Returns the deleted topic's id, which v6+ responses carry."""
    unknown = ApiError(
        ErrorCode.unknown_topic_or_partition, "This server does not host this topic-partition."
    )
    info = await svc.meta.get_topic(name)
    if info is None:
        raise unknown
    try:
        # By id too: the id answered is the id of the topic deleted, never of a re-created one.
        await svc.meta.delete_topic(name, info.topic_id)
    except UnknownTopicError:
        raise unknown from None
    finally:
        svc.topics.invalidate(name)
        svc.reader.forget_topic(name)
    return info.topic_id


async def _delete_by_id(svc: Services, topic_id: uuid.UUID) -> str:
    unknown = ApiError(ErrorCode.unknown_topic_id, "This server does not host this topic ID.")
    info = await svc.topics.get_by_id(topic_id)
    if info is None:
        raise unknown
    try:
        # The name may come from a cache older than a delete and re-create: the store deletes
        # only the topic that still has this id.
        await svc.meta.delete_topic(info.name, topic_id)
    except UnknownTopicError:
        raise unknown from None
    finally:
        svc.topics.invalidate(info.name)
        svc.reader.forget_topic(info.name)
    return info.name


def _delete_result(
    msgs: Messages,
    name: str | None,
    topic_id: uuid.UUID | None,
    code: ErrorCode,
    message: str | None,
) -> Any:
    return msgs.make(
        DeletableTopicResult,
        name=name,
        topic_id=topic_id,
        error_code=code,
        error_message=message,
    )


# -- CreatePartitions -------------------------------------------------------------------------


@api(ApiKey.CREATE_PARTITIONS, 0, 3)
async def handle_create_partitions(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    topics, repeated = without_repeats(req.topics, lambda t: str(t.name))
    results = []
    for topic in topics:
        code, message = ErrorCode.none, None
        try:
            await _grow(svc, topic, bool(req.validate_only))
        except ApiError as refused:
            code, message = error(refused.code), refused.message
        except MetadataError as exc:
            code, message = ErrorCode.unknown_server_error, str(exc)
        results.append(
            msgs.make(
                CreatePartitionsTopicResult,
                name=topic.name,
                error_code=code,
                error_message=message,
            )
        )
    for name in repeated:
        results.append(
            msgs.make(
                CreatePartitionsTopicResult,
                name=name,
                error_code=ErrorCode.invalid_request,
                error_message=DUPLICATE_NAME,
            )
        )
    return msgs.make(CreatePartitionsResponse, throttle_time=ZERO_THROTTLE, results=tuple(results))


async def _grow(svc: Services, topic: Any, validate_only: bool) -> None:
    name: str = topic.name
    count = int(topic.count)
    unknown = ApiError(ErrorCode.unknown_topic_or_partition, f"The topic '{name}' does not exist.")
    info = await svc.meta.get_topic(name) if is_valid_topic_name(name) else None
    if info is None:
        raise unknown
    if count < info.partitions:
        raise ApiError(
            ErrorCode.invalid_partitions,
            f"Topic currently has {info.partitions} partitions, which is higher than the "
            f"requested {count}.",
        )
    if count == info.partitions:
        raise ApiError(
            ErrorCode.invalid_partitions, f"Topic already has {info.partitions} partitions."
        )
    if count > PARTITIONS_MAX:
        raise ApiError(
            ErrorCode.invalid_partitions,
            f"Number of partitions {count} is above the limit of {PARTITIONS_MAX}.",
        )
    added = count - info.partitions
    if topic.assignments is not None and len(topic.assignments) != added:
        raise ApiError(
            ErrorCode.invalid_replica_assignment,
            f"Increasing the number of partitions by {added} but {len(topic.assignments)} "
            "assignments provided.",
        )
    if validate_only:
        return
    try:
        await svc.meta.create_partitions(name, count)
    except UnknownTopicError:
        raise unknown from None
    except InvalidPartitionsError as exc:
        raise ApiError(
            ErrorCode.invalid_partitions, str(exc) or "Invalid partition count."
        ) from None
    finally:
        svc.topics.invalidate(name)
