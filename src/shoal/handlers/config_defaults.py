"""The topic configs Shoal knows: defaults, types, validation, and the broker configs it reports.

Topics store only their overrides (`TopicInfo.configs`); the effective value of a key is the
override or the default here. Names, types and defaults follow Kafka's `TopicConfig`, so tools
that read or set them (kafka-configs, AdminClient, Terraform providers) see familiar values.
Several keys (replication, flushing, index layout) mean nothing for a broker without local logs
or replicas; they are accepted and stored so that existing scripts keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from shoal.settings import Settings

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
LIST_SEPARATOR = ","


class ConfigType(IntEnum):
    """DescribeConfigs `config_type` (v3+)."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigSource(IntEnum):
    """DescribeConfigs `config_source` (v1+)."""

    UNKNOWN = 0
    TOPIC_CONFIG = 1  # DYNAMIC_TOPIC_CONFIG
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


class ResourceType(IntEnum):
    """ConfigResource.Type as sent in Describe/Alter/IncrementalAlterConfigs."""

    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8
    CLIENT_METRICS = 16
    GROUP = 32


Check = Callable[[str], str | None]  # returns an error message, or None when the value is valid


@dataclass(frozen=True, slots=True)
class ConfigDef:
    name: str
    type: ConfigType
    default: str
    doc: str
    check: Check
    broker_synonym: str | None = None  # the broker-wide key Kafka derives this default from
    # False where Kafka's broker key has no default of its own (log.retention.ms defers to
    # log.retention.hours): Kafka then lists no DEFAULT synonym.
    broker_key_default: bool = True


Synonym = tuple[str, str | None, ConfigSource]


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One effective config value, as DescribeConfigs and CreateTopics v5+ report it."""

    name: str
    value: str | None
    source: ConfigSource
    type: ConfigType
    doc: str
    read_only: bool = False
    is_sensitive: bool = False
    # (name, value, source) in order of precedence, the one in force first, as Kafka lists them.
    synonyms: tuple[Synonym, ...] = ()


def _integer(low: int, high: int) -> Check:
    def check(value: str) -> str | None:
        try:
            number = int(value.strip())
        except ValueError:
            return f"{value!r} is not an integer"
        if not low <= number <= high:
            return f"{number} is outside [{low}, {high}]"
        return None

    return check


def _double(low: float, high: float) -> Check:
    def check(value: str) -> str | None:
        try:
            number = float(value.strip())
        except ValueError:
            return f"{value!r} is not a number"
        if not low <= number <= high:
            return f"{number} is outside [{low}, {high}]"
        return None

    return check


def _boolean(value: str) -> str | None:
    if value.strip().lower() in ("true", "false"):
        return None
    return f"{value!r} is not true or false"


def _one_of(*allowed: str, case_sensitive: bool = True) -> Check:
    def check(value: str) -> str | None:
        v = value.strip()
        if v in allowed or (not case_sensitive and v.lower() in {a.lower() for a in allowed}):
            return None
        return f"{value!r} is not one of {', '.join(allowed)}"

    return check


def _list_of(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        for item in split_list(value):
            if allowed and item not in allowed:
                return f"{item!r} is not one of {', '.join(allowed)}"
        return None

    return check


def split_list(value: str | None) -> list[str]:
    if value is None:
        return []
    return [item.strip() for item in value.split(LIST_SEPARATOR) if item.strip()]


_I = ConfigType.INT
_L = ConfigType.LONG

_DEFS: tuple[ConfigDef, ...] = (
    ConfigDef("cleanup.policy", ConfigType.LIST, "delete",
              "delete: drop old data by retention.ms/retention.bytes; compact: keep the last "
              "record of every key.", _list_of("delete", "compact"), "log.cleanup.policy"),
    ConfigDef("compression.type", ConfigType.STRING, "producer",
              "Shoal stores batches as the producer sent them; only 'producer' changes nothing.",
              _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
              "compression.type"),
    ConfigDef("compression.gzip.level", _I, "-1", "Accepted for compatibility.",
              _integer(-1, 9), "compression.gzip.level"),
    ConfigDef("compression.lz4.level", _I, "9", "Accepted for compatibility.",
              _integer(1, 17), "compression.lz4.level"),
    ConfigDef("compression.zstd.level", _I, "3", "Accepted for compatibility.",
              _integer(-131072, 22), "compression.zstd.level"),
    ConfigDef("delete.retention.ms", _L, "86400000",
              "How long delete tombstones are kept in compacted topics.",
              _integer(0, LONG_MAX), "log.cleaner.delete.retention.ms"),
    ConfigDef("file.delete.delay.ms", _L, "60000", "Accepted for compatibility.",
              _integer(0, LONG_MAX), "log.segment.delete.delay.ms"),
    ConfigDef("errors.deadletterqueue.group.enable", ConfigType.BOOLEAN, "false",
              "Accepted for compatibility: share groups are not served.", _boolean),
    ConfigDef("flush.messages", _L, str(LONG_MAX),
              "Accepted for compatibility: every acknowledged batch is in the object store.",
              _integer(1, LONG_MAX), "log.flush.interval.messages"),
    ConfigDef("flush.ms", _L, str(LONG_MAX),
              "Accepted for compatibility: every acknowledged batch is in the object store.",
              _integer(0, LONG_MAX), "log.flush.interval.ms", False),
    ConfigDef("follower.replication.throttled.replicas", ConfigType.LIST, "",
              "Accepted for compatibility: there is no replication.", _list_of()),
    ConfigDef("index.interval.bytes", _I, "4096", "Accepted for compatibility.",
              _integer(0, INT_MAX), "log.index.interval.bytes"),
    ConfigDef("leader.replication.throttled.replicas", ConfigType.LIST, "",
              "Accepted for compatibility: there is no replication.", _list_of()),
    ConfigDef("local.retention.bytes", _L, "-2", "Accepted for compatibility.",
              _integer(-2, LONG_MAX), "log.local.retention.bytes"),
    ConfigDef("local.retention.ms", _L, "-2", "Accepted for compatibility.",
              _integer(-2, LONG_MAX), "log.local.retention.ms"),
    ConfigDef("max.compaction.lag.ms", _L, str(LONG_MAX),
              "Longest time a record stays ineligible for compaction.",
              _integer(1, LONG_MAX), "log.cleaner.max.compaction.lag.ms"),
    ConfigDef("max.decompressed.message.bytes", _I, "2147483639",
              "Accepted for compatibility: batches are not decompressed on produce.",
              _integer(0, INT_MAX), "max.decompressed.message.bytes"),
    ConfigDef("max.message.bytes", _I, "1048588",
              "Largest record batch the topic accepts.", _integer(0, INT_MAX),
              "message.max.bytes"),
    ConfigDef("message.timestamp.after.max.ms", _L, "3600000",
              "How far in the future a CreateTime timestamp may be (batch header's largest).",
              _integer(0, LONG_MAX), "log.message.timestamp.after.max.ms"),
    ConfigDef("message.timestamp.before.max.ms", _L, str(LONG_MAX),
              "How far in the past a CreateTime timestamp may be (batch header's first).",
              _integer(0, LONG_MAX), "log.message.timestamp.before.max.ms"),
    ConfigDef("message.timestamp.type", ConfigType.STRING, "CreateTime",
              "CreateTime keeps the producer's timestamps; LogAppendTime uses commit time.",
              _one_of("CreateTime", "LogAppendTime"), "log.message.timestamp.type"),
    ConfigDef("min.cleanable.dirty.ratio", ConfigType.DOUBLE, "0.5",
              "Share of uncompacted data that triggers compaction.", _double(0.0, 1.0),
              "log.cleaner.min.cleanable.ratio"),
    ConfigDef("min.compaction.lag.ms", _L, "0",
              "Shortest time a record stays uncompacted.", _integer(0, LONG_MAX),
              "log.cleaner.min.compaction.lag.ms"),
    ConfigDef("min.insync.replicas", _I, "1",
              "Accepted for compatibility: the object store gives durability.",
              _integer(1, INT_MAX), "min.insync.replicas"),
    ConfigDef("preallocate", ConfigType.BOOLEAN, "false", "Accepted for compatibility.",
              _boolean, "log.preallocate"),
    ConfigDef("remote.copy.lag.bytes", _L, "-1", "Accepted for compatibility.",
              _integer(-1, LONG_MAX), "log.remote.copy.lag.bytes"),
    ConfigDef("remote.copy.lag.ms", _L, "0", "Accepted for compatibility.",
              _integer(-1, LONG_MAX), "log.remote.copy.lag.ms"),
    ConfigDef("remote.log.copy.disable", ConfigType.BOOLEAN, "false",
              "Accepted for compatibility.", _boolean),
    ConfigDef("remote.log.delete.on.disable", ConfigType.BOOLEAN, "false",
              "Accepted for compatibility.", _boolean),
    ConfigDef("remote.storage.enable", ConfigType.BOOLEAN, "false",
              "Accepted for compatibility: all data is in the object store.", _boolean),
    ConfigDef("retention.bytes", _L, "-1",
              "Per-partition size above which old data is dropped; -1: no limit.",
              _integer(-1, LONG_MAX), "log.retention.bytes"),
    ConfigDef("retention.ms", _L, "604800000",
              "Age after which data is dropped; -1: keep forever.",
              _integer(-1, LONG_MAX), "log.retention.ms", False),
    ConfigDef("segment.bytes", _I, "1073741824", "Accepted for compatibility.",
              _integer(14, INT_MAX), "log.segment.bytes"),
    ConfigDef("segment.index.bytes", _I, "10485760", "Accepted for compatibility.",
              _integer(4, INT_MAX), "log.index.size.max.bytes"),
    ConfigDef("segment.jitter.ms", _L, "0", "Accepted for compatibility.",
              _integer(0, LONG_MAX), "log.roll.jitter.ms", False),
    ConfigDef("segment.ms", _L, "604800000", "Accepted for compatibility.",
              _integer(1, LONG_MAX), "log.roll.ms", False),
    ConfigDef("unclean.leader.election.enable", ConfigType.BOOLEAN, "false",
              "Accepted for compatibility: there are no leaders to elect.", _boolean,
              "unclean.leader.election.enable"),
)  # fmt: skip

TOPIC_CONFIGS: Mapping[str, ConfigDef] = {d.name: d for d in _DEFS}


def topic_defaults(settings: Settings | None = None) -> dict[str, str]:
    """Default value of every known topic config; `settings` adjusts the broker-derived ones."""
    values = {d.name: d.default for d in _DEFS}
    if settings is not None:
        values["max.message.bytes"] = str(settings.message_bytes_max)
        # The retention job applies the agent's defaults: report those.
        values["retention.ms"] = str(settings.log_retention_ms)
        values["retention.bytes"] = str(settings.log_retention_bytes)
    return values


def validate_topic_config(name: str, value: str | None) -> str | None:
    """An error message for an unknown key or a bad value; None when the pair is valid."""
    definition = TOPIC_CONFIGS.get(name)
    if definition is None:
        return f"Unknown topic config name: {name}"
    if value is None:
        return f"Null value not supported for topic config: {name}"
    problem = definition.check(value)
    if problem is not None:
        return f"Invalid value {value!r} for configuration {name}: {problem}"
    return None


def validate_topic_configs(configs: Mapping[str, str | None]) -> str | None:
    for name, value in configs.items():
        problem = validate_topic_config(name, value)
        if problem is not None:
            return problem
    return None


def effective_topic_configs(
    overrides: Mapping[str, str], settings: Settings | None = None
) -> dict[str, str]:
    """Override or default for every known key (unknown stored keys are kept as they are)."""
    values = topic_defaults(settings)
    values.update(overrides)
    return values


def topic_config_entries(
    overrides: Mapping[str, str], settings: Settings | None = None
) -> list[ConfigEntry]:
    """Every effective topic config, sorted by name, with where its value comes from."""
    defaults = topic_defaults(settings)
    entries = []
    for name in sorted(set(defaults) | set(overrides)):
        definition = TOPIC_CONFIGS.get(name)
        synonyms = _broker_synonyms(definition, defaults.get(name))
        if name in overrides:
            synonyms = ((name, overrides[name], ConfigSource.TOPIC_CONFIG), *synonyms)
        entries.append(
            ConfigEntry(
                name=name,
                value=overrides[name] if name in overrides else defaults[name],
                source=synonyms[0][2] if synonyms else ConfigSource.DEFAULT_CONFIG,
                type=definition.type if definition else ConfigType.UNKNOWN,
                doc=definition.doc if definition else "",
                synonyms=synonyms,
            )
        )
    return entries


def _broker_synonyms(definition: ConfigDef | None, value: str | None) -> tuple[Synonym, ...]:
    """What Kafka lists under a topic config for its broker-wide key: the agent's flag where it
    moved the default (a static broker config), then the key's own default if it has one."""
    if definition is None or definition.broker_synonym is None or value is None:
        return ()
    key = definition.broker_synonym
    rows: list[Synonym] = []
    if value != definition.default:
        rows.append((key, value, ConfigSource.STATIC_BROKER_CONFIG))
    if definition.broker_key_default:
        rows.append((key, definition.default, ConfigSource.DEFAULT_CONFIG))
    return tuple(rows)


def list_append(current: str | None, items: str) -> str:
    """IncrementalAlterConfigs APPEND: add the items that are not present yet, keeping order."""
    values = split_list(current)
    for item in split_list(items):
        if item not in values:
            values.append(item)
    return LIST_SEPARATOR.join(values)


def list_subtract(current: str | None, items: str) -> str:
    """IncrementalAlterConfigs SUBTRACT: remove every given item."""
    removed = set(split_list(items))
    return LIST_SEPARATOR.join(v for v in split_list(current) if v not in removed)


# Kafka's defaults of the broker keys whose agent flag has one (None: the key has none, Kafka
# derives it from another key: log.retention.ms from log.retention.hours).
KAFKA_BROKER_DEFAULTS: Mapping[str, str | None] = {
    "auto.create.topics.enable": "true",
    "log.retention.bytes": "-1",
    "log.retention.check.interval.ms": "300000",
    "log.retention.ms": None,
    "message.max.bytes": "1048588",
    "num.partitions": "1",
    "offsets.retention.check.interval.ms": "600000",
    "offsets.retention.minutes": "10080",
    "producer.id.expiration.check.interval.ms": "600000",
    "producer.id.expiration.ms": "86400000",
    "socket.request.max.bytes": "104857600",
}
KAFKA_RETENTION_MS = str(7 * 24 * 3600 * 1000)


def broker_config_entries(settings: Settings, node_id: int) -> list[ConfigEntry]:
    """What DescribeConfigs(BROKER) reports. Agents take their settings from flags at start and
    cannot change them at run time, so every entry is read-only. As from Kafka, a flag left at
    Kafka's default is a DEFAULT_CONFIG, one moved from it a STATIC_BROKER_CONFIG whose synonyms
    list the default after it; an agent's own addresses and ids are always static."""
    static = ConfigSource.STATIC_BROKER_CONFIG
    listener = f"PLAINTEXT://{settings.advertised}:{settings.kafka_port}"
    retention_ms: str | None = str(settings.log_retention_ms)
    if retention_ms == KAFKA_RETENTION_MS:
        retention_ms = None  # as Kafka: log.retention.hours holds the default
    own: list[tuple[str, str, ConfigType, str]] = [
        ("advertised.listeners", listener, ConfigType.LIST, "Where clients connect."),
        ("broker.id", str(node_id), ConfigType.INT, "This agent's node id."),
        ("broker.rack", settings.az, ConfigType.STRING, "This agent's zone."),
        ("listeners", f"PLAINTEXT://{settings.kafka_host}:{settings.kafka_port}",
         ConfigType.LIST, "Where this agent listens."),
    ]  # fmt: skip
    flags: list[tuple[str, str | None, ConfigType, str]] = [
        ("auto.create.topics.enable", str(settings.auto_create_topics).lower(),
         ConfigType.BOOLEAN, "Create unknown topics on first use."),
        ("compression.type", "producer", ConfigType.STRING,
         "Batches are stored as the producer sent them."),
        ("default.replication.factor", "1", ConfigType.INT,
         "Reported replication factor: the object store gives durability."),
        ("log.cleanup.policy", "delete", ConfigType.LIST, "Default cleanup.policy."),
        ("log.retention.bytes", str(settings.log_retention_bytes), ConfigType.LONG,
         "Default retention.bytes."),
        ("log.retention.check.interval.ms", str(settings.retention_check_interval_ms),
         ConfigType.LONG, "How often retention runs (agents with the jobs role)."),
        ("log.retention.hours", "168", ConfigType.INT,
         "Default retention, where log.retention.ms is not set."),
        ("log.retention.ms", retention_ms, ConfigType.LONG, "Default retention.ms."),
        ("message.max.bytes", str(settings.message_bytes_max), ConfigType.INT,
         "Largest record batch accepted."),
        ("min.insync.replicas", "1", ConfigType.INT, "Default min.insync.replicas."),
        ("num.partitions", str(settings.default_partitions), ConfigType.INT,
         "Partitions of auto-created topics."),
        ("offsets.retention.check.interval.ms", str(settings.offsets_retention_check_interval_ms),
         ConfigType.LONG, "How often committed offsets expire (jobs role)."),
        ("offsets.retention.minutes", str(settings.offsets_retention_minutes), ConfigType.INT,
         "Offsets of a group empty this long are deleted."),
        ("producer.id.expiration.check.interval.ms",
         str(settings.producer_id_expiration_check_interval_ms), ConfigType.INT,
         "How often producer state expires (jobs role)."),
        ("producer.id.expiration.ms", str(settings.producer_id_expiration_ms), ConfigType.INT,
         "Idempotence state of a producer idle this long is forgotten."),
        ("socket.request.max.bytes", str(settings.frame_bytes_max), ConfigType.INT,
         "Largest request frame accepted."),
    ]  # fmt: skip
    entries = [
        ConfigEntry(name=n, value=v, source=static, type=t, doc=d, read_only=True,
                    synonyms=((n, v, static),))
        for n, v, t, d in own
    ]  # fmt: skip
    for name, value, kind, doc in flags:
        default = KAFKA_BROKER_DEFAULTS.get(name, value)
        synonyms: tuple[Synonym, ...] = ()
        source = ConfigSource.DEFAULT_CONFIG
        if value != default:
            source = static
            synonyms = ((name, value, static),)
        if default is not None:
            synonyms = (*synonyms, (name, default, ConfigSource.DEFAULT_CONFIG))
        entries.append(ConfigEntry(name=name, value=value, source=source, type=kind, doc=doc,
                                   read_only=True, synonyms=synonyms))  # fmt: skip
    return sorted(entries, key=lambda e: e.name)
