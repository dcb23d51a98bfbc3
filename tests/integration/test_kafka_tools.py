"""Apache Kafka 4.4's own command-line tools against a real Shoal agent, on both backends.

Each tool runs as an operator runs it (a JVM over a real socket) and what it prints is checked:
kafka-topics (create, list, describe, alter, delete), kafka-configs (add, describe, delete,
`--all`), the console producer and consumer (keyed lines round-trip), kafka-consumer-groups
(list, describe, three kinds of reset, delete), kafka-get-offsets, kafka-delete-records, the
producer and consumer perf tests, and kafka-broker-api-versions. Expected values come from the
inputs (the lines produced, the Java client's key partitioner), never from Shoal's answers.

One agent per backend serves the whole module: a JVM start costs more than any step here.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2  # type: ignore[import-untyped]

from tests.agent_process import AgentProcess
from tests.backends import agent_on_backend
from tests.kafka_dist import tool

pytestmark = pytest.mark.timeout(300)

PARTITIONS = 3
# Keys k0..k11 land 3/5/4 on partitions 0/1/2: uneven, so a per-partition mix-up shows.
KEYS = 12
PERF_RECORDS = 20_000


@pytest.fixture(scope="module")
def agent_tools(
    tmp_path_factory: pytest.TempPathFactory, backend_kind: str, request: pytest.FixtureRequest
) -> Iterator[AgentProcess]:
    data: Path = tmp_path_factory.mktemp("kafka-tools")
    # No auto-creation: every topic here is made by kafka-topics, so a tool that writes to
    # a topic that is not there fails instead of creating it with other settings.
    args = ["--auto-create-topics", "false", "--flush-interval-ms", "20"]
    with agent_on_backend(backend_kind, request, data, args) as proc:
        yield proc


def run(name: str, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool; it must exit 0."""
    done = tool(name, *args, input_text=input_text)
    assert done.returncode == 0, (
        f"{name} {args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


def new_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    out = run(
        "kafka-topics", "--bootstrap-server", bootstrap, "--create", "--topic", topic,
        "--partitions", str(partitions),
    ).stdout  # fmt: skip
    assert f"Created topic {topic}." in out


def topic_list(bootstrap: str) -> set[str]:
    return set(run("kafka-topics", "--bootstrap-server", bootstrap, "--list").stdout.split())


def describe_partitions(bootstrap: str, topic: str) -> tuple[int, list[int]]:
    """PartitionCount of the summary line, and the partition numbers of the per-partition lines."""
    out = run(
        "kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", topic
    ).stdout
    count = re.search(rf"Topic:\s*{re.escape(topic)}\s.*PartitionCount:\s*(\d+)", out)
    assert count is not None, out
    lines = re.findall(rf"Topic:\s*{re.escape(topic)}\s+Partition:\s*(\d+)\s+Leader:\s*\d+", out)
    return int(count.group(1)), sorted(int(p) for p in lines)


def key_partition(key: str, partitions: int = PARTITIONS) -> int:
    """Where the Java producer's built-in partitioner puts a keyed record:
    toPositive(murmur2(key)) % partitions."""
    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)


def keyed_lines() -> list[str]:
    return [f"k{i}:v{i}" for i in range(KEYS)]


def expected_counts() -> dict[int, int]:
    counts = Counter(key_partition(line.split(":")[0]) for line in keyed_lines())
    return {p: counts.get(p, 0) for p in range(PARTITIONS)}


def console_produce(bootstrap: str, topic: str, lines: list[str]) -> None:
    run(
        "kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
        "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
        "--producer-property", "acks=all",
        input_text="".join(f"{line}\n" for line in lines),
    )  # fmt: skip


def get_offsets(bootstrap: str, topic: str, time_arg: str) -> dict[int, int]:
    out = run(
        "kafka-get-offsets", "--bootstrap-server", bootstrap, "--topic", topic, "--time", time_arg
    ).stdout
    found = re.findall(rf"^{re.escape(topic)}:(\d+):(\d+)\s*$", out, re.MULTILINE)
    assert found, out
    return {int(p): int(o) for p, o in found}


def group_table(out: str, group: str, topic: str, column: str) -> dict[int, int]:
    """One numeric column of a kafka-consumer-groups table (describe or reset), per partition."""
    header: list[str] | None = None
    values: dict[int, int] = {}
    for line in out.splitlines():
        cells = line.split()
        if "PARTITION" in cells:
            header = cells
        elif header is not None and cells[:2] == [group, topic]:
            row = dict(zip(header, cells, strict=False))
            values[int(row["PARTITION"])] = int(row[column])
    assert header is not None and column in header, out
    return values


def consumer_groups(bootstrap: str, *args: str) -> str:
    return run("kafka-consumer-groups", "--bootstrap-server", bootstrap, *args).stdout


def test_kafka_topics_create_list_describe_alter_delete(agent_tools: AgentProcess) -> None:
    b = agent_tools.bootstrap
    topic = new_topic("kt-topics")
    create_topic(b, topic)
    assert topic in topic_list(b)
    assert describe_partitions(b, topic) == (3, [0, 1, 2])

    out = run(
        "kafka-topics", "--bootstrap-server", b, "--alter", "--topic", topic, "--partitions", "5"
    )
    assert "rror" not in out.stdout, out.stdout
    assert describe_partitions(b, topic) == (5, [0, 1, 2, 3, 4])

    run("kafka-topics", "--bootstrap-server", b, "--delete", "--topic", topic)
    assert topic not in topic_list(b)


def test_kafka_configs_add_describe_delete_all(agent_tools: AgentProcess) -> None:
    b = agent_tools.bootstrap
    topic = new_topic("kt-configs")
    create_topic(b, topic)
    entity = ("--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic)

    out = run("kafka-configs", *entity, "--alter", "--add-config", "retention.ms=12345").stdout
    assert f"Completed updating config for topic {topic}." in out
    out = run("kafka-configs", *entity, "--describe").stdout
    assert re.search(r"^\s*retention\.ms=12345\s", out, re.MULTILINE), out
    assert "DYNAMIC_TOPIC_CONFIG:retention.ms=12345" in out

    run("kafka-configs", *entity, "--alter", "--delete-config", "retention.ms")
    out = run("kafka-configs", *entity, "--describe").stdout
    assert f"Dynamic configs for topic {topic} are:" in out
    assert "retention.ms" not in out, out

    out = run("kafka-configs", *entity, "--describe", "--all").stdout
    assert f"All configs for topic {topic} are:" in out
    assert re.search(r"^\s*cleanup\.policy=delete\s", out, re.MULTILINE), out
    # Back to the default (Kafka's 7 days), no longer a topic override.
    retention = re.search(r"^\s*retention\.ms=(\d+)\s([^\n]*)", out, re.MULTILINE)
    assert retention is not None, out
    assert retention.group(1) == "604800000", retention.group(0)
    assert "DYNAMIC_TOPIC_CONFIG" not in retention.group(2), retention.group(0)


def test_console_round_trip_and_consumer_groups(agent_tools: AgentProcess) -> None:
    b = agent_tools.bootstrap
    topic = new_topic("kt-console")
    group = new_topic("kt-group")
    create_topic(b, topic)
    lines = keyed_lines()
    counts = expected_counts()
    assert min(counts.values()) >= 2, counts  # the --to-offset 2 reset below needs 2 each
    console_produce(b, topic, lines)

    done = run(
        "kafka-console-consumer", "--bootstrap-server", b, "--topic", topic, "--from-beginning",
        "--max-messages", str(len(lines)), "--formatter-property", "print.key=true",
        "--group", group, "--timeout-ms", "60000",
    )  # fmt: skip
    printed = [line.replace("\t", ":") for line in done.stdout.splitlines() if line]
    assert sorted(printed) == sorted(lines), done.stdout
    assert f"Processed a total of {len(lines)} messages" in done.stderr

    assert group in consumer_groups(b, "--list").split()

    out = consumer_groups(b, "--describe", "--group", group)
    assert group_table(out, group, topic, "CURRENT-OFFSET") == counts
    assert group_table(out, group, topic, "LOG-END-OFFSET") == counts
    assert group_table(out, group, topic, "LAG") == dict.fromkeys(counts, 0)

    reset = ("--reset-offsets", "--group", group, "--topic", topic)
    for how, want in (
        (("--to-earliest",), dict.fromkeys(counts, 0)),
        (("--to-offset", "2"), dict.fromkeys(counts, 2)),
        (("--shift-by", "-1"), dict.fromkeys(counts, 1)),
    ):
        out = consumer_groups(b, *reset, *how, "--execute")
        assert group_table(out, group, topic, "NEW-OFFSET") == want, (how, out)
        out = consumer_groups(b, "--describe", "--offsets", "--group", group)
        assert group_table(out, group, topic, "CURRENT-OFFSET") == want, (how, out)
        lag = {p: counts[p] - want[p] for p in counts}
        assert group_table(out, group, topic, "LAG") == lag, (how, out)

    out = consumer_groups(b, "--delete", "--group", group)
    assert re.search(rf"Deletion of requested consumer groups \('{group}'\) was successful", out)
    assert group not in consumer_groups(b, "--list").split()


def test_get_offsets_and_delete_records(agent_tools: AgentProcess, tmp_path: Path) -> None:
    b = agent_tools.bootstrap
    topic = new_topic("kt-offsets")
    create_topic(b, topic)
    counts = expected_counts()
    console_produce(b, topic, keyed_lines())

    assert get_offsets(b, topic, "-2") == dict.fromkeys(counts, 0)
    assert get_offsets(b, topic, "-1") == counts

    spec = tmp_path / "delete.json"
    spec.write_text(
        json.dumps({"partitions": [{"topic": topic, "partition": 0, "offset": 2}], "version": 1})
    )
    out = run("kafka-delete-records", "--bootstrap-server", b, "--offset-json-file", str(spec))
    assert re.search(rf"partition:\s*{re.escape(topic)}-0\s+low_watermark:\s*2\b", out.stdout), (
        out.stdout
    )
    assert get_offsets(b, topic, "-2") == {**dict.fromkeys(counts, 0), 0: 2}
    assert get_offsets(b, topic, "-1") == counts


def test_perf_tests(agent_tools: AgentProcess) -> None:
    b = agent_tools.bootstrap
    topic = new_topic("kt-perf")
    create_topic(b, topic)
    out = run(
        "kafka-producer-perf-test", "--topic", topic, "--num-records", str(PERF_RECORDS),
        "--record-size", "100", "--throughput", "-1",
        "--command-property", f"bootstrap.servers={b}", "acks=all",
    ).stdout  # fmt: skip
    summary = re.findall(r"^(\d+) records sent,", out, re.MULTILINE)
    # The last line is the total; earlier ones (if any) are the 5-second windows.
    assert summary and int(summary[-1]) == PERF_RECORDS, out
    assert sum(get_offsets(b, topic, "-1").values()) == PERF_RECORDS

    out = run(
        "kafka-consumer-perf-test", "--bootstrap-server", b, "--topic", topic,
        "--num-records", str(PERF_RECORDS), "--timeout", "60000",
    ).stdout  # fmt: skip
    rows = [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if "," in line]
    header = next(row for row in rows if "data.consumed.in.nMsg" in row)
    data = rows[rows.index(header) + 1]
    assert int(data[header.index("data.consumed.in.nMsg")]) == PERF_RECORDS, out


def test_broker_api_versions(agent_tools: AgentProcess) -> None:
    out = run("kafka-broker-api-versions", "--bootstrap-server", agent_tools.bootstrap).stdout
    assert re.search(rf"^{re.escape(agent_tools.bootstrap)} \(id: \d+", out, re.MULTILINE), out
    produce = re.search(r"Produce\(0\): (\d+) to (\d+) \[usable: \d+\]", out)
    assert produce is not None, out
    assert int(produce.group(1)) <= int(produce.group(2))
    for api, key in (("Fetch", 1), ("Metadata", 3), ("ApiVersions", 18)):
        line = re.search(rf"{api}\({key}\): ([^\n]*)", out)
        assert line is not None, (api, out)
        assert "UNSUPPORTED" not in line.group(1), line.group(0)
        assert re.match(r"\d+( to \d+)? \[usable: \d+\]", line.group(1)), line.group(0)
