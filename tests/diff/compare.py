"""Normalise two decoded Kafka responses and diff them field by field (pure, no I/O).

A response (a kio dataclass) becomes a tree of dicts, lists and plain values (`to_tree`);
record batches inside `records` fields become lists of batch headers, so two brokers that hold
the same batches compare equal without comparing bytes that a broker rewrites. `diff` walks both
trees and returns one `Divergence` per leaf that differs, skipping the paths an `Ignore` rule
names: what legitimately differs between two brokers (their ids, addresses, clocks).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from shoal.protocol.batch import HEADER_BYTES, LOG_OVERHEAD, parse_header

# A leaf present in one tree and not in the other.
MISSING: Final = "<missing>"


def glob_match(pattern: str, path: str) -> bool:
    """`*` matches any run of characters, everything else itself: paths hold brackets
    (`topics[name].configs[key]`), which fnmatch would read as character classes."""
    regex = _GLOBS.get(pattern)
    if regex is None:
        regex = _GLOBS[pattern] = re.compile(".*".join(map(re.escape, pattern.split("*"))))
    return regex.fullmatch(path) is not None


_GLOBS: dict[str, re.Pattern[str]] = {}


@dataclass(frozen=True, slots=True)
class Ignore:
    """Paths (`glob_match` patterns over `a.b[0].c` paths) left out of the comparison, and
    why."""

    pattern: str
    reason: str

    def matches(self, path: str) -> bool:
        return glob_match(self.pattern, path)


@dataclass(frozen=True, slots=True)
class Divergence:
    path: str
    kafka: Any
    shoal: Any

    def __str__(self) -> str:
        return f"{self.path}: kafka={self.kafka!r} shoal={self.shoal!r}"


# What differs between any two brokers and that no client may rely on being equal.
IGNORE: Final[tuple[Ignore, ...]] = (
    Ignore("*throttle_time*", "quota throttling is a broker's local state; both answer 0 here"),
    Ignore("brokers", "node ids, hosts and ports of two separate clusters"),
    Ignore("brokers[*", "node ids, hosts and ports of two separate clusters"),
    Ignore("*cluster_id", "each cluster has its own random id"),
    Ignore("*controller_id", "a node id of its cluster"),
    Ignore("*leader_id", "a node id of its cluster"),
    Ignore("*replica_nodes*", "node ids of its cluster"),
    Ignore("*isr_nodes*", "node ids of its cluster"),
    Ignore("*offline_replicas*", "node ids of its cluster"),
    Ignore("*node_id", "a node id of its cluster (FindCoordinator)"),
    Ignore("*.host", "addresses of two separate brokers"),
    Ignore("host", "addresses of two separate brokers"),
    Ignore("*.port", "addresses of two separate brokers"),
    Ignore("port", "addresses of two separate brokers"),
    Ignore("*topic_id", "topic ids are random UUIDs chosen by each cluster"),
    Ignore("*leader_epoch", "Shoal has no leaders and no leader epochs (docs/apis.md)"),
    Ignore("*partition_leader_epoch", "Kafka stamps its leader epoch into stored batches"),
    Ignore("*log_append_time*", "the broker's clock"),
    Ignore("*error_message", "free text for people; clients act on the error code"),
    Ignore("*member_id", "a random id each coordinator generates"),
    Ignore("*leader", "a member id of the group, random per coordinator (JoinGroup)"),
    Ignore("*producer_id", "allocated by each cluster from its own counter"),
    Ignore("*_authorized_operations", "no ACLs on either broker; Kafka computes them anyway"),
)


def to_tree(value: Any, field_name: str = "") -> Any:
    """`value` (a kio message or any part of one) as dicts, lists, ints, strs and floats."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_tree(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        if field_name == "records":
            return batch_headers(bytes(value))
        return bytes(value).hex()
    if isinstance(value, enum.Enum):
        return int(value.value) if isinstance(value.value, int) else str(value.value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (tuple, list, frozenset, set)):
        items = [to_tree(v, field_name) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if value is None:
        return None
    raise TypeError(f"cannot compare a {type(value).__name__} ({field_name})")


def batch_headers(data: bytes) -> list[dict[str, Any]] | str:
    """The v2 batch headers in `data` (a partial batch at the end is reported by its length);
    anything that is not a batch stays hex, so the diff shows it."""
    out: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < HEADER_BYTES:
            out.append({"partial_batch_bytes": len(data) - pos})
            break
        header = parse_header(data, pos)
        end = pos + LOG_OVERHEAD + header.batch_length
        if header.magic != 2 or header.batch_length < HEADER_BYTES - LOG_OVERHEAD:
            return data.hex()
        if end > len(data):
            out.append({"partial_batch_bytes": len(data) - pos})
            break
        out.append({f.name: getattr(header, f.name) for f in dataclasses.fields(header)})
        pos = end
    return out


# Lists of dicts are matched by the first of these keys that names each element once: Kafka and
# Shoal both answer in an order of their own for topics, partitions and configs, and clients
# index those answers by name.
SORT_KEYS: Final = ("name", "topic", "resource_name", "partition_index", "index", "api_key")
# Lists whose order means something, compared by position: config synonyms come in order of
# precedence, the first being the one in force.
ORDERED: Final = (".synonyms",)


def _key_of(items: list[Any]) -> str | None:
    """The sort key that names every element of `items` once, if any."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in SORT_KEYS:
        values = [i.get(key) for i in items]
        if all(v is not None for v in values) and len(set(map(repr, values))) == len(values):
            return key
    return None


def diff(
    kafka: Any, shoal: Any, ignore: Iterable[Ignore] = IGNORE, path: str = ""
) -> list[Divergence]:
    """The leaves where the two trees differ, outside the ignored paths, in path order."""
    rules = tuple(ignore)
    out: list[Divergence] = []
    _walk(kafka, shoal, rules, path, out)
    return out


def _ignored(path: str, rules: Sequence[Ignore]) -> bool:
    return any(rule.matches(path) for rule in rules)


def _walk(k: Any, s: Any, rules: Sequence[Ignore], path: str, out: list[Divergence]) -> None:
    if path and _ignored(path, rules):
        return
    if isinstance(k, Mapping) and isinstance(s, Mapping):
        for key in sorted(set(k) | set(s)):
            sub = f"{path}.{key}" if path else str(key)
            _walk(k.get(key, MISSING), s.get(key, MISSING), rules, sub, out)
        return
    if isinstance(k, list) and isinstance(s, list):
        keys = {_key_of(x) for x in (k, s) if x}
        key = keys.pop() if len(keys) == 1 and not path.endswith(ORDERED) else None
        if key is not None and len(k) == len(s) == 1 and k[0].get(key) != s[0].get(key):
            key = None  # the one element each side has, named its own way
        if key is not None:
            # Matched by name: one missing element is one divergence, not a shifted tail.
            ks = {str(i[key]): i for i in k}
            ss = {str(i[key]): i for i in s}
            for name in sorted(set(ks) | set(ss)):
                _walk(ks.get(name, MISSING), ss.get(name, MISSING), rules, f"{path}[{name}]", out)
            return
        for i in range(max(len(k), len(s))):
            _walk(
                k[i] if i < len(k) else MISSING,
                s[i] if i < len(s) else MISSING,
                rules,
                f"{path}[{i}]",
                out,
            )
        return
    if k != s:
        out.append(Divergence(path, k, s))


def version_ranges(api_versions: Mapping[str, Any]) -> dict[int, tuple[int, int]]:
    """api key -> (min, max) of an ApiVersions response tree."""
    return {
        int(k["api_key"]): (int(k["min_version"]), int(k["max_version"]))
        for k in api_versions["api_keys"]
    }


def version_differences(
    kafka: Mapping[int, tuple[int, int]], shoal: Mapping[int, tuple[int, int]]
) -> dict[int, tuple[tuple[int, int] | None, tuple[int, int] | None]]:
    """api key -> (Kafka's range, Shoal's range) where they differ; None: not served."""
    return {
        key: (kafka.get(key), shoal.get(key))
        for key in sorted(set(kafka) | set(shoal))
        if kafka.get(key) != shoal.get(key)
    }
