"""Producer-state expiry in a real jobs-role agent, on both backends: an idempotent producer
idle past --producer-id-expiration-ms is forgotten, so its next batch counts as a first one (as
in Kafka); before that the same batch is a sequence gap. Offset expiry is measured in minutes
(offsets.retention.minutes), so its job is tested over both stores in tests/unit/test_expiry.py.
"""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from tests.agent_process import AgentProcess
from tests.backends import Backend
from tests.diff.requests import init_producer_id, produce, setup_topic
from tests.rawkafka import RawConnection
from tests.unit.batchgen import make_batch

TOPIC = "expiry"
EXPIRY_ARGS = [
    "--flush-interval-ms", "20",
    "--producer-id-expiration-ms", "1500",
    "--producer-id-expiration-check-interval-ms", "200",
]  # fmt: skip


def _produce_code(conn: RawConnection, pid: int, epoch: int, sequence: int) -> int:
    records = make_batch([(None, b"v")], producer_id=pid, producer_epoch=epoch,
                         base_sequence=sequence)  # fmt: skip
    resp = conn.call(produce(TOPIC, 0, records)({}))
    return int(resp.responses[0].partition_responses[0].error_code)


def test_idle_producer_state_expires(tmp_path: Path, backend: Backend) -> None:
    agent = AgentProcess(tmp_path / "agent", [*backend.args, *EXPIRY_ARGS], env=backend.env)
    agent.start()
    conn = RawConnection(agent.bootstrap)
    try:
        for step in setup_topic(TOPIC):
            while not (step.until or (lambda r: True))(conn.call(step.build({}))):
                time.sleep(0.1)
        answer = conn.call(init_producer_id({}))
        pid, epoch = int(answer.producer_id), int(answer.producer_epoch)
        assert _produce_code(conn, pid, epoch, 0) == 0
        assert _produce_code(conn, pid, epoch, 5) == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
        deadline = time.monotonic() + 30
        while _produce_code(conn, pid, epoch, 5) != 0:
            assert time.monotonic() < deadline, "the producer's state never expired"
            time.sleep(0.5)
        # DescribeConfigs tells the operator what the agent applies.
        admin = AdminClient({"bootstrap.servers": agent.bootstrap})
        broker = ConfigResource(ConfigResource.Type.BROKER, "0")
        configs = admin.describe_configs([broker])[broker].result(30)
        assert configs["producer.id.expiration.ms"].value == "1500"
        assert configs["offsets.retention.minutes"].value == "10080"
    finally:
        conn.close()
        assert agent.stop() == 0, agent.log_tail()
