"""A confluent-kafka group member as its own process, so tests can kill it with -9.

Commit after process: each delivered (partition, offset) is written to the output file
before the offsets are committed, so whatever the group committed was recorded first.
SIGTERM closes the consumer (a graceful LeaveGroup).

    python -m tests.integration.group_member_proc BOOTSTRAP TOPIC GROUP OUTFILE [PAUSE_S]
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time


def main(argv: list[str]) -> int:
    from confluent_kafka import Consumer, KafkaException

    bootstrap, topic, group, outfile = argv[:4]
    pause_s = float(argv[4]) if len(argv) > 4 else 0.0
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 20000,
        }
    )
    c.subscribe([topic])
    with open(outfile, "a", buffering=1) as out:
        while not stopping:
            msgs = [m for m in c.consume(200, 0.2) if m.error() is None]
            if not msgs:
                continue
            out.write("".join(f"{m.partition()} {m.offset()}\n" for m in msgs))
            out.flush()
            # A rebalance took the partitions: their next owner re-reads from the last commit.
            with contextlib.suppress(KafkaException):
                c.commit(asynchronous=False)
            if pause_s:
                time.sleep(pause_s)
    c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
