"""Acceptance: real clients produce 100,000 records with keys, headers and timestamps over 8
partitions, once per codec, and consume every record back exactly once, in order, byte-identical;
ListOffsets agrees with what was produced."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.agent_process import AgentProcess
from tests.integration import workload

N = 100_000
PARTITIONS = 8
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

Producer = Callable[[str, str, int, int, str], None]
Consumer = Callable[[str, str, int, int], dict[int, list[workload.Rec]]]

CLIENTS: dict[str, tuple[Producer, Consumer]] = {
    "confluent": (workload.produce_confluent, workload.consume_confluent),
    "kafka-python": (workload.produce_kafka_python, workload.consume_kafka_python),
    "aiokafka": (workload.produce_aiokafka, workload.consume_aiokafka),
}


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, 1)])
    futures[topic].result(30)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", list(CLIENTS))
def test_roundtrip(agent: AgentProcess, client: str, codec: str) -> None:
    produce, consume = CLIENTS[client]
    topic = f"rt-{client}-{codec}"
    create_topic(agent.bootstrap, topic, PARTITIONS)

    produce(agent.bootstrap, topic, N, PARTITIONS, codec)
    got = consume(agent.bootstrap, topic, N, PARTITIONS)

    expected = workload.expected_by_partition(N, PARTITIONS)
    for p in range(PARTITIONS):
        assert len(got[p]) == len(expected[p]), (
            f"partition {p}: {len(got[p])} != {len(expected[p])}"
        )
        for i, (g, e) in enumerate(zip(got[p], expected[p], strict=True)):
            assert g == e, f"partition {p} record {i}: {g} != {e}"

    marks = workload.watermarks_confluent(agent.bootstrap, topic, PARTITIONS)
    assert marks == {p: (0, len(expected[p])) for p in range(PARTITIONS)}

    # Record i (partition i % 8, offset i // 8) has timestamp BASE + i: a lookup between two
    # records' timestamps must land exactly on the later record, even inside a batch.
    queries = [(p, workload.BASE_TS_MS + p + PARTITIONS * k + 1) for p in (0, 3) for k in (0, 777)]
    assert workload.offsets_for_times_confluent(agent.bootstrap, topic, queries) == [1, 778] * 2
