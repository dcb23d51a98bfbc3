"""Decisions and encodings of topic rows, shared by both backends: partition counts, config
changes, and the configs' stored form (JSON text)."""

from __future__ import annotations

import json
import uuid

from shoal.meta.store import InvalidPartitionsError, TopicInfo


def check_new_topic(partitions: int) -> None:
    """Raises InvalidPartitionsError for a topic of no partitions."""
    if partitions < 1:
        raise InvalidPartitionsError(f"partitions must be >= 1, not {partitions}")


def grown(info: TopicInfo, total: int) -> TopicInfo:
    """`info` with `total` partitions. Raises InvalidPartitionsError unless it grows."""
    if total <= info.partitions:
        raise InvalidPartitionsError(
            f"topic {info.name} has {info.partitions} partitions; cannot grow to {total}"
        )
    return TopicInfo(info.name, info.topic_id, total, info.configs)


def altered(info: TopicInfo, configs: dict[str, str | None], replace: bool) -> TopicInfo:
    """`info` with `configs` applied: a value sets its key, None deletes it; `replace` starts
    from an empty map (legacy AlterConfigs) instead of the current one."""
    merged: dict[str, str] = {} if replace else dict(info.configs)
    for key, value in configs.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return TopicInfo(info.name, info.topic_id, info.partitions, merged)


def encode_configs(configs: dict[str, str]) -> str:
    return json.dumps(configs, sort_keys=True, separators=(",", ":"))


def topic_from_row(name: str, topic_id: uuid.UUID, partitions: int, configs: str) -> TopicInfo:
    return TopicInfo(name, topic_id, int(partitions), json.loads(configs))
