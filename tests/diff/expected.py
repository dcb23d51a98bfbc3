"""Where Shoal's answers differ from Apache Kafka 4.4's, on purpose or for now, each with its
reason. The differential test (tests/integration/test_diff_kafka.py) requires the divergences it
sees to be exactly these: a new one fails it, and so does one listed here that went away, so
this table cannot go stale. compat/diff/README.md shows it (`python -m tests.diff.expected`
prints the Markdown, a unit test checks the README holds it).

A pattern is a `compare.glob_match` over "step label: path" of one case's divergences
(runner.diff_case).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from tests.diff.compare import Divergence, glob_match

VersionRange = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Expected:
    case: str
    pattern: str
    reason: str

    def matches(self, case: str, divergence: Divergence) -> bool:
        return case == self.case and glob_match(self.pattern, divergence.path)


_FEATURES = (
    "Shoal has no feature levels (KIP-584); clients that read them (group.version, "
    "transaction.version) use the classic protocols Shoal serves"
)
_MIN_ISR = (
    "a freshly formatted Kafka 4.4 stores a cluster-wide min.insync.replicas (eligible leader "
    "replicas need one); Shoal has no replicas and reports Kafka's default"
)
_BROKER_READ_ONLY = (
    "an agent's settings are flags it reads at start and cannot change at run time; Kafka marks "
    "its dynamically updatable ones read_only=false"
)

EXPECTED: Final[tuple[Expected, ...]] = (
    Expected("api_versions", "api versions v3: finalized_features*", _FEATURES),
    Expected("api_versions", "api versions v3: supported_features*", _FEATURES),
    Expected("metadata_auto_create", "first ask creates: topics[*].error_code",
             "Shoal creates the topic in the metadata store before it answers, so the first "
             "Metadata lists it; Kafka answers UNKNOWN_TOPIC_OR_PARTITION while its controller "
             "creates it, and clients ask again"),
    Expected("metadata_auto_create", "first ask creates: topics[*].partitions[0]",
             "as above: Shoal lists the new topic's partition at once"),
    Expected("create_topics_validation",
             "one request, each topic wrong in its own way: topics[diff-create-rf3].*",
             "replication factor 3 on one node: Kafka cannot place the replicas "
             "(INVALID_REPLICATION_FACTOR); Shoal keeps no replicas (the object store gives "
             "durability), accepts any factor and reports 1, so settings written for a "
             "three-broker Kafka work"),
    Expected("create_topics_validation",
             "*: topics[*].configs[min.insync.replicas].config_source", _MIN_ISR),
    Expected("describe_configs", "*: results[*].configs[min.insync.replicas].*", _MIN_ISR),
    Expected("describe_configs_broker", "*: results[*].configs[min.insync.replicas].*",
             _MIN_ISR),
    Expected("describe_configs_broker", "*: results[*].configs[*].read_only", _BROKER_READ_ONLY),
)  # fmt: skip

_TXN = "transactions are not served yet (issue 13)"
_SECURITY = "authentication and ACLs are not served yet (issue 14)"
_NO_REPLICAS = "Shoal has no replicas, leaders or log directories to manage"
_NO_KRAFT = "Shoal has no KRaft quorum: the metadata store orders everything"
_SHARE = "share groups (KIP-932) are not served"
_NEW_GROUPS = (
    "the KIP-848 consumer and KIP-1071 streams group protocols are not served; clients use the "
    "classic group protocol"
)
_NEWER = "a version newer than kio (Shoal's schema library) or Shoal knows"

# api key -> (Kafka's range, Shoal's range or None when not served, reason).
VERSIONS: Final[Mapping[int, tuple[VersionRange, VersionRange | None, str]]] = {
    0: ((0, 13), (3, 13), "Kafka 4 advertises Produce v0-2 but refuses them (KIP-896 kept "
                          "them listed for old librdkafka); Shoal lists what it serves"),
    1: ((4, 18), (4, 17), "Fetch v18 is for followers (KIP-1166); Shoal has none"),
    2: ((1, 11), (1, 10), "ListOffsets v11 adds -6, earliest pending upload: tiered storage"),
    3: ((0, 13), (0, 12), "Metadata v13 (a top-level error code) not served yet"),
    8: ((2, 10), (2, 9), "OffsetCommit v10 (topic ids) not served yet"),
    9: ((1, 10), (1, 9), "OffsetFetch v10 (topic ids) not served yet"),
    17: ((0, 1), None, _SECURITY),
    18: ((0, 5), (0, 4), _NEWER),
    23: ((2, 4), None, _NO_REPLICAS),
    24: ((0, 5), None, _TXN),
    25: ((0, 4), None, _TXN),
    26: ((0, 5), None, _TXN),
    27: ((1, 2), None, _TXN),
    28: ((0, 6), None, _TXN),
    29: ((1, 3), None, _SECURITY),
    30: ((1, 3), None, _SECURITY),
    31: ((1, 3), None, _SECURITY),
    34: ((1, 2), None, _NO_REPLICAS),
    35: ((1, 5), None, _NO_REPLICAS),
    36: ((0, 2), None, _SECURITY),
    38: ((1, 3), None, _SECURITY),
    39: ((1, 2), None, _SECURITY),
    40: ((1, 2), None, _SECURITY),
    41: ((1, 3), None, _SECURITY),
    42: ((0, 3), (0, 2), "DeleteGroups v3 not served yet"),
    43: ((0, 2), None, _NO_REPLICAS),
    45: ((0, 1), None, _NO_REPLICAS),
    46: ((0, 0), None, _NO_REPLICAS),
    48: ((0, 1), None, "client quotas are not served"),
    49: ((0, 1), None, "client quotas are not served"),
    50: ((0, 0), None, _SECURITY),
    51: ((0, 0), None, _SECURITY),
    55: ((0, 2), None, _NO_KRAFT),
    57: ((0, 2), None, _NO_KRAFT),
    61: ((0, 0), None, _TXN),
    64: ((0, 0), None, _NO_KRAFT),
    65: ((0, 0), None, _TXN),
    66: ((0, 2), None, _TXN),
    68: ((0, 1), None, _NEW_GROUPS),
    69: ((0, 1), None, _NEW_GROUPS),
    74: ((0, 1), None, "ListConfigResources not served yet"),
    75: ((0, 0), None, "DescribeTopicPartitions not served yet (kafka-topics falls back to "
                       "Metadata and prints Elr: N/A)"),
    76: ((1, 1), None, _SHARE),
    77: ((1, 1), None, _SHARE),
    78: ((1, 2), None, _SHARE),
    79: ((1, 2), None, _SHARE),
    80: ((0, 1), None, _NO_KRAFT),
    81: ((0, 0), None, _NO_KRAFT),
    83: ((0, 0), None, _SHARE),
    84: ((0, 0), None, _SHARE),
    85: ((0, 1), None, _SHARE),
    86: ((0, 0), None, _SHARE),
    87: ((0, 1), None, _SHARE),
    88: ((0, 1), None, _NEW_GROUPS),
    89: ((0, 1), None, _NEW_GROUPS),
    90: ((0, 1), None, _SHARE),
    91: ((0, 0), None, _SHARE),
    92: ((0, 0), None, _SHARE),
    93: ((0, 0), None, _NEWER),
    94: ((0, 0), None, _NEWER),
}  # fmt: skip


def unexpected(case: str, seen: Iterable[Divergence]) -> list[Divergence]:
    """The divergences of `case` no entry of EXPECTED accounts for."""
    return [d for d in seen if not any(e.matches(case, d) for e in EXPECTED)]


def unseen(seen: Mapping[str, Iterable[Divergence]]) -> list[Expected]:
    """Entries of EXPECTED for a case that ran (a key of `seen`) that matched none of its
    divergences: fixed since, so the entry must go."""
    lists = {case: list(ds) for case, ds in seen.items()}
    return [
        e
        for e in EXPECTED
        if e.case in lists and not any(e.matches(e.case, d) for d in lists[e.case])
    ]


def markdown() -> str:
    """The tables compat/diff/README.md shows."""
    rows = ["| Case | Divergence (step: path) | Why |", "| --- | --- | --- |"]
    rows += [f"| {e.case} | `{e.pattern}` | {e.reason} |" for e in EXPECTED]
    rows += ["", "| API key | Kafka 4.4 | Shoal | Why |", "| --- | --- | --- | --- |"]
    for key, (kafka, shoal, why) in sorted(VERSIONS.items()):
        served = "not served" if shoal is None else f"{shoal[0]}-{shoal[1]}"
        rows.append(f"| {key} | {kafka[0]}-{kafka[1]} | {served} | {why} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
