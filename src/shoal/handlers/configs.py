"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.

Topic configs live in the metadata store as overrides; defaults come from `config_defaults`.
Broker configs are reported but cannot be altered: Kafka brokers accept a set of *dynamic* broker
configs through these APIs, but a Shoal agent takes its settings from flags at start and keeps
them frozen, so an alter of a BROKER (or BROKER_LOGGER) resource gets INVALID_REQUEST with a
message saying so, which is what Kafka answers for configs that cannot be updated dynamically.

Versions served: DescribeConfigs 1-4, AlterConfigs 0-2, IncrementalAlterConfigs 0-1.
- DescribeConfigs v1: synonyms; v3: config type and documentation; v4: flexible.
- AlterConfigs v2 and IncrementalAlterConfigs v1: flexible.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kio.schema.alter_configs.v2.response import (
    AlterConfigsResourceResponse,
    AlterConfigsResponse,
)
from kio.schema.describe_configs.v4.response import (
    DescribeConfigsResourceResult,
    DescribeConfigsResponse,
    DescribeConfigsResult,
    DescribeConfigsSynonym,
)
from kio.schema.errors import ErrorCode
from kio.schema.incremental_alter_configs.v1 import response as incremental

from shoal.handlers.base import RequestContext, api
from shoal.handlers.config_defaults import (
    TOPIC_CONFIGS,
    ConfigEntry,
    ConfigType,
    ResourceType,
    broker_config_entries,
    list_append,
    list_subtract,
    topic_config_entries,
    topic_defaults,
    validate_topic_config,
    validate_topic_configs,
)
from shoal.handlers.duplicates import duplicates
from shoal.handlers.services import Services
from shoal.handlers.topic_names import is_valid_topic_name
from shoal.meta.store import MetadataError, TopicInfo, UnknownTopicError
from shoal.protocol.apis import ApiKey
from shoal.protocol.errors import ApiError
from shoal.protocol.messages import ZERO_THROTTLE, Messages, error

OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3

STATIC_BROKER_MESSAGE = (
    "Shoal agents take broker configs from flags at start; they cannot be updated dynamically."
)

Alter = Callable[[Services, Any, bool], Awaitable[None]]


async def _topic(svc: Services, name: str) -> TopicInfo:
    if not is_valid_topic_name(name):
        raise ApiError(ErrorCode.invalid_topic_exception, f"Topic name {name!r} is illegal.")
    # Straight from the store, not the cache: a describe right after an alter on another agent
    # must see the new values.
    info = await svc.meta.get_topic(name)
    if info is None:
        raise ApiError(ErrorCode.unknown_topic_or_partition, f"Topic '{name}' does not exist.")
    return info


def _unsupported(resource_type: int) -> ApiError:
    return ApiError(ErrorCode.invalid_request, f"Unsupported resource type {resource_type}.")


# -- DescribeConfigs --------------------------------------------------------------------------


@api(ApiKey.DESCRIBE_CONFIGS, 1, 4)
async def handle_describe_configs(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    synonyms = bool(req.include_synonyms)
    documentation = bool(getattr(req, "include_documentation", False))
    results = []
    for resource in req.resources:
        code, message, configs = ErrorCode.none, None, ()
        try:
            entries = await _describe(svc, int(resource.resource_type), resource.resource_name)
            keys = resource.configuration_keys
            if keys:  # None and empty both mean "all keys", as in Kafka
                wanted = set(keys)
                entries = [e for e in entries if e.name in wanted]
            configs = tuple(_entry(msgs, e, synonyms, documentation) for e in entries)
        except ApiError as refused:
            code, message = error(refused.code), refused.message
        except MetadataError as exc:
            code, message = ErrorCode.unknown_server_error, str(exc)
        results.append(
            msgs.make(
                DescribeConfigsResult,
                error_code=code,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=configs,
            )
        )
    return msgs.make(DescribeConfigsResponse, throttle_time=ZERO_THROTTLE, results=tuple(results))


async def _describe(svc: Services, resource_type: int, name: str) -> list[ConfigEntry]:
    if resource_type == ResourceType.TOPIC:
        info = await _topic(svc, name)
        return topic_config_entries(info.configs, svc.settings)
    if resource_type == ResourceType.BROKER:
        if name == "":
            return []  # cluster-wide dynamic defaults: there are none
        _check_broker_name(svc, name)
        return broker_config_entries(svc.settings, svc.node_id)
    raise _unsupported(resource_type)


def _check_broker_name(svc: Services, name: str) -> None:
    try:
        broker_id = int(name)
    except ValueError:
        raise ApiError(
            ErrorCode.invalid_request, f"Broker id must be an integer, but it is: {name}"
        ) from None
    if broker_id != svc.node_id:
        raise ApiError(
            ErrorCode.invalid_request,
            f"Unexpected broker id, expected {svc.node_id} or empty string, but received {name}",
        )


def _entry(msgs: Messages, entry: ConfigEntry, synonyms: bool, documentation: bool) -> Any:
    return msgs.make(
        DescribeConfigsResourceResult,
        name=entry.name,
        value=entry.value,
        read_only=entry.read_only,
        config_source=int(entry.source),
        is_sensitive=entry.is_sensitive,
        synonyms=tuple(_synonyms(msgs, entry)) if synonyms else (),
        config_type=int(entry.type),
        documentation=entry.doc if documentation else None,
    )


def _synonyms(msgs: Messages, entry: ConfigEntry) -> list[Any]:
    return [
        msgs.make(DescribeConfigsSynonym, name=n, value=v, source=int(s))
        for n, v, s in entry.synonyms
    ]


# -- AlterConfigs (legacy: replaces the whole override set) -----------------------------------


@api(ApiKey.ALTER_CONFIGS, 0, 2)
async def handle_alter_configs(svc: Services, ctx: RequestContext, req: Any) -> Any:
    return await _alter_all(
        svc, ctx, req, _alter_legacy, (AlterConfigsResponse, AlterConfigsResourceResponse)
    )


async def _alter_legacy(svc: Services, resource: Any, validate_only: bool) -> None:
    if int(resource.resource_type) != ResourceType.TOPIC:
        raise _alter_refusal(int(resource.resource_type))
    info = await _topic(svc, resource.resource_name)
    # Kafka's legacy path drops null values rather than rejecting them.
    configs = {c.name: c.value for c in resource.configs if c.value is not None}
    problem = validate_topic_configs(configs)
    if problem is not None:
        raise ApiError(ErrorCode.invalid_config, problem)
    if validate_only:
        return
    try:
        await svc.meta.replace_topic_configs(info.name, configs)
    except UnknownTopicError:
        raise ApiError(
            ErrorCode.unknown_topic_or_partition, f"Topic '{info.name}' does not exist."
        ) from None
    finally:
        svc.topics.invalidate(info.name)


def _alter_refusal(resource_type: int) -> ApiError:
    if resource_type in (ResourceType.BROKER, ResourceType.BROKER_LOGGER):
        return ApiError(ErrorCode.invalid_request, STATIC_BROKER_MESSAGE)
    return _unsupported(resource_type)


# -- IncrementalAlterConfigs ------------------------------------------------------------------


@api(ApiKey.INCREMENTAL_ALTER_CONFIGS, 0, 1)
async def handle_incremental_alter_configs(svc: Services, ctx: RequestContext, req: Any) -> Any:
    return await _alter_all(
        svc,
        ctx,
        req,
        _alter_incremental,
        (incremental.IncrementalAlterConfigsResponse, incremental.AlterConfigsResourceResponse),
    )


async def _alter_incremental(svc: Services, resource: Any, validate_only: bool) -> None:
    if int(resource.resource_type) != ResourceType.TOPIC:
        raise _alter_refusal(int(resource.resource_type))
    info = await _topic(svc, resource.resource_name)
    repeated = duplicates(c.name for c in resource.configs)
    if repeated:
        duplicated = sorted(repeated)
        raise ApiError(
            ErrorCode.invalid_request, f"Error due to duplicate config keys: {duplicated}"
        )
    defaults = topic_defaults(svc.settings)
    changes: dict[str, str | None] = {}
    for config in resource.configs:
        name, value, op = config.name, config.value, int(config.config_operation)
        definition = TOPIC_CONFIGS.get(name)
        if definition is None:
            raise ApiError(ErrorCode.invalid_config, f"Unknown topic config name: {name}")
        if op == OP_DELETE:
            changes[name] = None
            continue
        if op not in (OP_SET, OP_APPEND, OP_SUBTRACT):
            raise ApiError(ErrorCode.invalid_request, f"Unknown config operation {op} for {name}.")
        if value is None:
            raise ApiError(ErrorCode.invalid_request, f"Null value not supported for : {name}")
        if op != OP_SET:
            if definition.type != ConfigType.LIST:
                verb = "append" if op == OP_APPEND else "subtract"
                raise ApiError(
                    ErrorCode.invalid_config,
                    f"Config value {verb} is not allowed for config key: {name}",
                )
            current = info.configs.get(name, defaults[name])
            value = (
                list_append(current, value) if op == OP_APPEND else list_subtract(current, value)
            )
        problem = validate_topic_config(name, value)
        if problem is not None:
            raise ApiError(ErrorCode.invalid_config, problem)
        changes[name] = value
    if validate_only or not changes:
        return
    try:
        await svc.meta.set_topic_configs(info.name, changes)
    except UnknownTopicError:
        raise ApiError(
            ErrorCode.unknown_topic_or_partition, f"Topic '{info.name}' does not exist."
        ) from None
    finally:
        svc.topics.invalidate(info.name)


# -- shared by both alters --------------------------------------------------------------------


async def _alter_all(
    svc: Services,
    ctx: RequestContext,
    req: Any,
    alter: Alter,
    classes: tuple[type[Any], type[Any]],
) -> Any:
    """Run `alter` on each resource; `classes` are the answered API's response and per-resource
    classes (both APIs name the latter AlterConfigsResourceResponse)."""
    msgs = ctx.responses()
    response, resource_response = classes
    repeated = duplicates((int(r.resource_type), r.resource_name) for r in req.resources)
    results = []
    for resource in req.resources:
        code, message = ErrorCode.none, None
        try:
            if (int(resource.resource_type), resource.resource_name) in repeated:
                raise ApiError(
                    ErrorCode.invalid_request, f"Duplicate resource {resource.resource_name!r}."
                )
            await alter(svc, resource, bool(req.validate_only))
        except ApiError as refused:
            code, message = error(refused.code), refused.message
        except MetadataError as exc:
            code, message = ErrorCode.unknown_server_error, str(exc)
        results.append(
            msgs.make(
                resource_response,
                error_code=code,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
        )
    return msgs.make(response, throttle_time=ZERO_THROTTLE, responses=tuple(results))
