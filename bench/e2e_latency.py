"""End-to-end latency across agents (issue 4, acceptance 5).

Starts `shoal playground --agents 2 --zones 2` (or the given sizes), produces at a paced rate
with `client.id=shoal_az=zone-1` (so to zone-1 agents) and consumes with
`client.id=shoal_az=zone-2` (so from zone-2 agents): every record crosses agents through the
object store and the metadata store. Latency is from the `produce()` call to the consumer's
receipt, both stamped with this process's monotonic clock. The target is flush interval +
100 ms at p99.

    .venv/bin/python bench/e2e_latency.py
    .venv/bin/python bench/e2e_latency.py --flush-interval-ms 50 --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from tests.read_workload import create_topic, end_to_end_latency

from read_path import Playground, free_base


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--agents", type=int, default=2)
    ap.add_argument("--zones", type=int, default=2)
    ap.add_argument("--flush-interval-ms", type=int, default=None, help="default: the agent's")
    ap.add_argument("--rate", type=float, default=200.0, help="records per second")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--value-bytes", type=int, default=256)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="shoal-e2e-bench-")).resolve()
    flags = []
    if args.flush_interval_ms is not None:
        flags = ["--flush-interval-ms", str(args.flush_interval_ms)]
    pg = Playground(
        root / "data", args.agents, args.zones,
        free_base(args.agents, 22000), free_base(args.agents, 32000), flags,
    )  # fmt: skip
    pg.data_dir.mkdir(parents=True)
    count = int(args.rate * args.seconds)
    try:
        pg.start()
        flush_ms = args.flush_interval_ms
        if flush_ms is None:
            flush_ms = int(pg.status(0)["agent"]["flush_interval_ms"])
        topic = f"e2e-{uuid.uuid4().hex[:6]}"
        create_topic(pg.bootstrap(), topic, args.partitions)
        result = end_to_end_latency(
            pg.bootstrap("zone-1"), "zone-1", pg.bootstrap("zone-2"), "zone-2", topic,
            count=count, rate_per_s=args.rate, value_bytes=args.value_bytes,
        )  # fmt: skip
    finally:
        pg.stop()
    figures = {
        "agents": args.agents,
        "zones": args.zones,
        "flush_interval_ms": flush_ms,
        "rate_per_s": args.rate,
        "sent": result.sent,
        "received": result.received,
        "p50_ms": round(result.percentile(50), 1),
        "p90_ms": round(result.percentile(90), 1),
        "p99_ms": round(result.percentile(99), 1),
        "max_ms": round(max(result.latencies_ms, default=float("nan")), 1),
        "target_p99_ms": flush_ms + 100,
    }
    print(
        f"\nproduce to zone-1 agents, consume from zone-2 agents; {args.rate:g} records/s of "
        f"{args.value_bytes} B for {args.seconds:g}s; flush interval {flush_ms} ms\n"
        f"  received {result.received}/{result.sent}   p50 {figures['p50_ms']} ms   "
        f"p90 {figures['p90_ms']} ms   p99 {figures['p99_ms']} ms   max {figures['max_ms']} ms"
        f"   (target p99 <= {flush_ms + 100} ms: "
        f"{'met' if figures['p99_ms'] <= flush_ms + 100 else 'NOT met'})"
    )
    if args.json:
        print(json.dumps(figures))
    return 0 if result.received == result.sent else 1


if __name__ == "__main__":
    raise SystemExit(main())
