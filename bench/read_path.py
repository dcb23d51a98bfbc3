"""Read-path benchmark (issue 4, acceptance 1 and 2): object-store GETs per zone.

Starts `shoal playground --agents 6 --zones 3` on a fresh data dir, produces `--mib` of
`--record-bytes` records over `--partitions` partitions, then for each G in `--groups` restarts
the playground (cold caches) and runs G consumer groups in every zone at once, each reading the
whole topic from the beginning with `client.id=shoal_az=<zone>`. Prints, per round, the GETs of
each zone (summed over its agents' `shoal_object_store_requests_total{cause="fetch",op="get"}`)
against the bound 1.15 x (stored bytes / 4 MiB) + segment files, and `shoal_fetch_bytes_total
{cross_zone="true"}`. Then the same bytes in `--compare-partitions` (8 vs 512) partitions.

    .venv/bin/python bench/read_path.py                          # the issue's figures: 128 MiB
    .venv/bin/python bench/read_path.py --mib 32 --groups 1,4    # quicker

With `--compaction`, the same read before and after file compaction: the topic is written and
read with compaction off (the files as the writers made them), then the agents run compaction
until the topic's file count stops changing, then it is read again, cold, with compaction off;
the bound after is 1.1 x (stored bytes / 4 MiB) + 2 per zone, and the table shows what the
compaction itself cost (its GETs and PUTs).

    .venv/bin/python bench/read_path.py --compaction --mib 256 --partitions 64 --groups 1 \
        --compare-partitions ''
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.cluster_process import (
    get_bound,
    parse_samples,
    sample_sum,
    topic_blocks,
    topic_files,
)
from tests.read_workload import (
    consume_groups,
    create_topic,
    produce_volume,
    watermarks,
)

MiB = 1024 * 1024
START_TIMEOUT_S = 90.0
ROUND_TIMEOUT_S = 3600.0


def _ports_free(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base(count: int, start: int) -> int:
    for base in range(start, 60000, 97):
        if _ports_free(base, count):
            return base
    raise RuntimeError("no free port range")


@dataclass
class Playground:
    data_dir: Path
    agents: int
    zones: int
    kafka_base: int
    http_base: int
    agent_flags: list[str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def zone_of(self, i: int) -> str:
        return f"zone-{i % self.zones + 1}"

    def zones_list(self) -> list[str]:
        return [f"zone-{z + 1}" for z in range(self.zones)]

    def bootstrap(self, zone: str | None = None) -> str:
        return ",".join(
            f"127.0.0.1:{self.kafka_base + i}"
            for i in range(self.agents)
            if zone is None or self.zone_of(i) == zone
        )

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "shoal.cli", "playground",
            "--agents", str(self.agents), "--zones", str(self.zones),
            "--kafka-port", str(self.kafka_base), "--http-port", str(self.http_base),
            "--data-dir", str(self.data_dir), *self.agent_flags,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        self.starts += 1
        log_path = self.data_dir.parent / f"playground-{self.starts}.log"
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        # The banner is printed once every agent listens.
        while b"Ctrl-C stops all agents" not in log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"playground did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        self._wait_rings()

    def _wait_rings(self) -> None:
        """Until every agent sees all agents (membership converged), or 20 s."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if all(self._members_seen(i) in (None, self.agents) for i in range(self.agents)):
                    return
            except OSError:
                pass
            time.sleep(0.2)

    def _members_seen(self, i: int) -> int | None:
        """Live agents in agent i's view (`cluster.zones` of /v1/status), None if not shown."""
        cluster = self.status(i).get("cluster")
        zones = cluster.get("zones") if isinstance(cluster, dict) else None
        if not isinstance(zones, dict):
            return None
        return sum(len(members) for members in zones.values())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def status(self, i: int) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.http_base + i}/v1/status"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return dict(json.loads(resp.read()))

    def counter_per_zone(self, name: str, **labels: str) -> dict[str, float]:
        out = dict.fromkeys(self.zones_list(), 0.0)
        for i in range(self.agents):
            url = f"http://127.0.0.1:{self.http_base + i}/metrics"
            with urllib.request.urlopen(url, timeout=10) as resp:
                samples = parse_samples(resp.read().decode())
            out[self.zone_of(i)] += sample_sum(samples, name, **labels)
        return out


@dataclass
class Round:
    topic: str
    partitions: int
    groups_per_zone: int
    stored_bytes: int
    files: int
    blocks: int
    bound: float
    gets: dict[str, float]
    cross_zone_bytes: float
    peer_requests: float
    fallbacks: float
    evictions: float
    seconds: float
    read_mib_per_s: float
    redelivered: int
    errors: list[str] = field(default_factory=list)


def fill(pg: Playground, topic: str, mib: float, partitions: int, record_bytes: int) -> list[int]:
    create_topic(pg.bootstrap(), topic, partitions)
    started = time.monotonic()
    produce_volume(pg.bootstrap(), topic, int(mib * MiB), partitions, record_bytes, timeout_s=3600)
    took = time.monotonic() - started
    print(f"  produced {mib:g} MiB to {topic} ({partitions} partitions) in {took:.1f}s"
          f" ({mib / took:.1f} MiB/s)", flush=True)  # fmt: skip
    return watermarks(pg.bootstrap(), topic, partitions)


CONSUMER_CONFIG: dict[str, object] = {}
TIMEOUTS = {"round_s": ROUND_TIMEOUT_S}


def run_round(pg: Playground, topic: str, high: list[int], groups: int, partitions: int) -> Round:
    pg.restart()
    files, stored = topic_files(pg.data_dir / "metadata.db", topic)
    boots: dict[str | None, str] = {z: pg.bootstrap(z) for z in pg.zones_list()}
    started = time.monotonic()
    results = consume_groups(
        boots, topic, groups, high, tag=f"{topic}-g{groups}-{uuid.uuid4().hex[:4]}",
        timeout_s=TIMEOUTS["round_s"], config=CONSUMER_CONFIG,
    )  # fmt: skip
    took = time.monotonic() - started
    problems = [f"{r.group}: {r.distinct}/{sum(high)} {r.fatal[:2]}" for r in results if not r.done]
    gets = pg.counter_per_zone("shoal_object_store_requests_total", op="get", cause="fetch")
    cross = sum(pg.counter_per_zone("shoal_fetch_bytes_total", cross_zone="true").values())
    peers = sum(pg.counter_per_zone("shoal_peer_requests_total", direction="sent").values())
    fallbacks = sum(pg.counter_per_zone("shoal_peer_fallbacks_total").values())
    evictions = sum(pg.counter_per_zone("shoal_block_cache_evictions_total").values())
    read_mib = stored / MiB * len(results)
    return Round(
        topic, partitions, groups, stored, files, topic_blocks(pg.data_dir / "metadata.db", topic),
        get_bound(stored, files), gets, cross, peers, fallbacks, evictions,
        took, read_mib / took, sum(r.redelivered for r in results), problems,
    )  # fmt: skip


def compaction_bound(stored_bytes: int, block_bytes: int = 4 * MiB) -> float:
    """The bound of a catch-up read of compacted files: 1.1 x (bytes / block) + 2 per zone."""
    return 1.1 * stored_bytes / block_bytes + 2


SETTLE_POLLS = 5
SETTLE_POLL_S = 2.0


def compact(pg: Playground, topic: str, interval_ms: int, timeout_s: float) -> tuple[float, float]:
    """Run the agents with compaction on until `topic`'s file count has not changed for
    SETTLE_POLLS polls; then back to compaction off. Returns compaction's (GETs, PUTs)."""
    flags = pg.agent_flags
    pg.agent_flags = [*flags, "--compaction-interval-ms", str(interval_ms)]
    pg.restart()
    started = time.monotonic()
    seen: list[int] = []
    try:
        while time.monotonic() - started < timeout_s:
            seen.append(topic_files(pg.data_dir / "metadata.db", topic)[0])
            if len(seen) >= SETTLE_POLLS and len(set(seen[-SETTLE_POLLS:])) == 1:
                break
            time.sleep(SETTLE_POLL_S)
        gets = sum(pg.counter_per_zone(
            "shoal_object_store_requests_total", op="get", cause="compaction").values())
        puts = sum(pg.counter_per_zone(
            "shoal_object_store_requests_total", op="put", cause="compaction").values())
    finally:
        pg.agent_flags = flags
    print(f"  compaction settled at {seen[-1]} files in {time.monotonic() - started:.0f}s"
          f" ({gets:.0f} GETs, {puts:.0f} PUTs)", flush=True)  # fmt: skip
    return gets, puts


def print_compaction(
    before: Round, after: Round, cost: tuple[float, float], zones: list[str]
) -> None:
    print(f"\nCatch-up read before and after file compaction ({before.partitions} partitions,"
          f" {before.groups_per_zone} group(s) per zone)")  # fmt: skip
    head = f"  {'':>7} {'files':>6} {'stored MiB':>10} {'blocks':>6} {'bound':>7}"
    head += "".join(f" {z + ' GETs':>12}" for z in zones) + f" {'ok':>3}"
    print(head)
    for name, r, bound in (
        ("before", before, get_bound(before.stored_bytes, before.files)),
        ("after", after, compaction_bound(after.stored_bytes)),
    ):
        line = f"  {name:>7} {r.files:>6} {r.stored_bytes / MiB:>10.1f} {r.blocks:>6}"
        line += f" {bound:>7.1f}" + "".join(f" {r.gets[z]:>12.0f}" for z in zones)
        ok = not r.errors and all(r.gets[z] <= bound for z in zones)
        print(line + f" {'yes' if ok else 'NO':>3}")
    print(f"  compaction cost: {cost[0]:.0f} GETs and {cost[1]:.0f} PUTs in all (once, not per"
          " zone)")


def print_rounds(title: str, rounds: list[Round], zones: list[str]) -> None:
    print(f"\n{title}")
    head = f"  {'partitions':>10} {'groups/zone':>11} {'stored MiB':>10} {'files':>6}"
    head += f" {'blocks':>6} {'bound':>7}"
    head += "".join(f" {z + ' GETs':>12}" for z in zones)
    head += f" {'cross-zone B':>12} {'peer reqs':>9} {'fallbacks':>9} {'evictions':>9}"
    head += f" {'read MiB/s':>10} {'ok':>3}"
    print(head)
    for r in rounds:
        line = f"  {r.partitions:>10} {r.groups_per_zone:>11} {r.stored_bytes / MiB:>10.1f}"
        line += f" {r.files:>6} {r.blocks:>6} {r.bound:>7.1f}"
        line += "".join(f" {r.gets[z]:>12.0f}" for z in zones)
        ok = "yes" if not r.errors and all(r.gets[z] <= r.bound for z in zones) else "NO"
        line += f" {r.cross_zone_bytes:>12.0f} {r.peer_requests:>9.0f} {r.fallbacks:>9.0f}"
        line += f" {r.evictions:>9.0f}"
        line += f" {r.read_mib_per_s:>10.1f}"
        print(line + f" {ok:>3}")
        for e in r.errors[:5]:
            print(f"    incomplete: {e}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--agents", type=int, default=6)
    ap.add_argument("--zones", type=int, default=3)
    ap.add_argument("--mib", type=float, default=128.0, help="bytes produced for the G rounds")
    ap.add_argument("--record-bytes", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=64)
    ap.add_argument("--groups", default="1,4,16", help="groups per zone, one round each")
    ap.add_argument("--compare-partitions", default="8,512", help="'' skips the comparison")
    ap.add_argument("--compare-mib", type=float, default=None, help="default: --mib")
    ap.add_argument("--compare-groups", type=int, default=4)
    ap.add_argument("--flush-interval-ms", type=int, default=100)
    ap.add_argument("--data-dir", default=None, help="default: a temporary directory")
    ap.add_argument("--json", action="store_true", help="also print the rounds as JSON")
    ap.add_argument("--round-timeout-s", type=float, default=ROUND_TIMEOUT_S)
    ap.add_argument("--consumer-debug", default=None, help="librdkafka debug contexts")
    ap.add_argument("--compaction", action="store_true",
                    help="read before and after file compaction (see above)")
    ap.add_argument("--compaction-interval-ms", type=int, default=1000)
    ap.add_argument("--compaction-timeout-s", type=float, default=1800.0)
    args = ap.parse_args()
    TIMEOUTS["round_s"] = args.round_timeout_s
    if args.consumer_debug:
        CONSUMER_CONFIG["debug"] = args.consumer_debug

    root = Path(args.data_dir or tempfile.mkdtemp(prefix="shoal-read-bench-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    pg = Playground(
        root / "data", args.agents, args.zones,
        free_base(args.agents, 21000), free_base(args.agents, 31000),
        # Compaction off while reading: the GETs are of the files the round starts with.
        ["--flush-interval-ms", str(args.flush_interval_ms), "--compaction-interval-ms", "0"],
    )  # fmt: skip
    pg.data_dir.mkdir(exist_ok=True)
    print(f"shoal playground --agents {args.agents} --zones {args.zones}, data in {root}")
    rounds: list[Round] = []
    compare: list[Round] = []
    compacted: list[Round] = []
    cost = (0.0, 0.0)
    try:
        pg.start()
        topic = f"read-{args.partitions}p-{uuid.uuid4().hex[:6]}"
        high = fill(pg, topic, args.mib, args.partitions, args.record_bytes)
        for g in [int(x) for x in args.groups.split(",") if x]:
            rounds.append(run_round(pg, topic, high, g, args.partitions))
            print_rounds("(progress)", rounds[-1:], pg.zones_list())
        if args.compaction:
            cost = compact(pg, topic, args.compaction_interval_ms, args.compaction_timeout_s)
            compacted.append(
                run_round(pg, topic, high, rounds[0].groups_per_zone, args.partitions)
            )
            print_rounds("(progress, after compaction)", compacted, pg.zones_list())
        counts = [int(x) for x in args.compare_partitions.split(",") if x]
        for n in counts:
            t = f"read-{n}p-{uuid.uuid4().hex[:6]}"
            h = fill(pg, t, args.compare_mib or args.mib, n, args.record_bytes)
            compare.append(run_round(pg, t, h, args.compare_groups, n))
            print_rounds("(progress)", compare[-1:], pg.zones_list())
    finally:
        pg.stop()

    zones = pg.zones_list()
    print(
        f"\nworkload: {args.record_bytes} B records, flush interval {args.flush_interval_ms} ms,"
        f" {args.agents} agents in {args.zones} zones; bound = 1.15 x stored/4 MiB + files"
    )
    print_rounds(f"GETs per zone vs consumer groups ({args.mib:g} MiB)", rounds, zones)
    if compare:
        print_rounds("GETs per zone vs partitions (same bytes)", compare, zones)
        if len(compare) == 2:
            for z in zones:
                a, b = compare[0].gets[z], compare[1].gets[z]
                spread = abs(a - b) / max(a, b, 1.0) * 100
                print(f"  {z}: {compare[0].partitions}p {a:.0f} vs {compare[1].partitions}p"
                      f" {b:.0f} GETs: {spread:.1f}% apart")  # fmt: skip
    if compacted:
        print_compaction(rounds[0], compacted[0], cost, zones)
    if args.json:
        print(json.dumps({"groups": [asdict(r) for r in rounds],
                          "partitions": [asdict(r) for r in compare],
                          "compacted": [asdict(r) for r in compacted]}, indent=1))  # fmt: skip
    failed = any(r.errors for r in rounds + compare + compacted)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
