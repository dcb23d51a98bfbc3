"""A multi-agent cluster of real `shoal agent` processes for integration tests.

Laid out as `shoal playground --agents N --zones Z` lays it out (one SQLite metadata file and
one local-folder object store shared by all agents, node id i, zone `zone-(i mod Z + 1)`), but
each agent is its own `AgentProcess`, so a test can `kill -9` one of them, stop or restart it.
Helpers read each agent's /metrics counters and /v1/status, and what the metadata store holds.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.agent_process import AgentProcess

MiB = 1024 * 1024


def zone_name(index: int, zones: int) -> str:
    return f"zone-{index % zones + 1}"


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(sample name, labels, value) of every sample in a Prometheus text page."""
    out: list[tuple[str, dict[str, str], float]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.append((sample.name, dict(sample.labels), float(sample.value)))
    return out


def sample_sum(
    samples: Iterable[tuple[str, dict[str, str], float]], name: str, **labels: str
) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when none)."""
    return sum(
        value
        for sample, have, value in samples
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


@dataclass
class ClusterAgent:
    index: int
    zone: str
    process: AgentProcess

    @property
    def bootstrap(self) -> str:
        return self.process.bootstrap

    @property
    def alive(self) -> bool:
        proc = self.process.proc
        return proc is not None and proc.poll() is None

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        return parse_samples(self.process.metrics())

    def counter(self, name: str, **labels: str) -> float:
        return sample_sum(self.samples(), name, **labels)

    def gets(self) -> float:
        """GETs of the read path (fetch misses), not of compaction."""
        return self.counter("shoal_object_store_requests_total", op="get", cause="fetch")

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.process.http}/v1/status", timeout=10) as resp:
            return dict(json.loads(resp.read()))


@dataclass
class Cluster:
    root: Path
    agents_count: int
    zones: int
    extra_args: list[str] = field(default_factory=list)
    agents: list[ClusterAgent] = field(default_factory=list)

    @property
    def bucket_url(self) -> str:
        return f"file://{self.root.resolve()}/objects"

    @property
    def metadata_path(self) -> Path:
        return self.root.resolve() / "metadata.db"

    def _process(self, index: int, zone: str) -> AgentProcess:
        return AgentProcess(
            self.root / f"agent-{index}",
            [
                "--bucket",
                self.bucket_url,
                "--metadata",
                f"sqlite:///{self.metadata_path}",
                "--node-id",
                str(index),
                "--az",
                zone,
                *self.extra_args,
            ],
        )

    def start(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.agents = [
            ClusterAgent(i, zone_name(i, self.zones), self._process(i, zone_name(i, self.zones)))
            for i in range(self.agents_count)
        ]
        # The first agent alone creates the schema; the others start together.
        self.agents[0].process.start()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda a: a.process.start(), self.agents[1:]))
        return self

    def restart(self, index: int) -> ClusterAgent:
        """A fresh process for agent `index` (same ports, node id and zone; empty caches)."""
        old = self.agents[index]
        if old.alive:
            old.process.stop()
        proc = AgentProcess(
            old.process.data_dir,
            old.process.extra_args,
            kafka_port=old.process.kafka_port,
            http_port=old.process.http_port,
        ).start()
        self.agents[index] = ClusterAgent(index, old.zone, proc)
        return self.agents[index]

    def stop(self) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda a: a.process.stop() if a.alive else None, self.agents))

    def kill(self, index: int) -> None:
        self.agents[index].process.kill()

    def live(self) -> list[ClusterAgent]:
        return [a for a in self.agents if a.alive]

    def in_zone(self, zone: str) -> list[ClusterAgent]:
        return [a for a in self.agents if a.zone == zone]

    def zone_names(self) -> list[str]:
        return [zone_name(i, self.zones) for i in range(self.zones)]

    def bootstrap(self, zone: str | None = None) -> str:
        chosen = [a for a in self.live() if zone is None or a.zone == zone]
        return ",".join(a.bootstrap for a in chosen)

    def counters(self, name: str, **labels: str) -> dict[int, float]:
        """`name` summed over `labels`, per live agent index."""
        return {a.index: a.counter(name, **labels) for a in self.live()}

    def per_zone(self, values: Mapping[int, float]) -> dict[str, float]:
        out = dict.fromkeys(self.zone_names(), 0.0)
        for index, value in values.items():
            out[self.agents[index].zone] += value
        return out

    def gets(self) -> dict[int, float]:
        """GETs of the read path (fetch misses), not of compaction, per live agent index."""
        return {a.index: a.gets() for a in self.live()}

    def cross_zone_bytes(self) -> dict[int, float]:
        return self.counters("shoal_fetch_bytes_total", cross_zone="true")

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- agent {a.index} ({a.zone}) ---\n{a.process.log_tail(lines)}" for a in self.agents
        )

    # -- what the metadata store holds -----------------------------------------------------

    def topic_files(self, topic: str) -> tuple[int, int]:
        """(segment files holding the topic's batches, their total bytes)."""
        return topic_files(self.metadata_path, topic)


def topic_files(metadata_path: Path, topic: str) -> tuple[int, int]:
    """(segment files holding `topic`'s batches, their total bytes), from the SQLite store."""
    con = sqlite3.connect(f"file:{metadata_path}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM files WHERE id IN "
            "(SELECT DISTINCT file_ref FROM batches WHERE topic = ?)",
            (topic,),
        ).fetchone()
    finally:
        con.close()
    return int(row[0]), int(row[1])


def topic_file_sizes(metadata_path: Path, topic: str) -> list[tuple[str, int]]:
    """(object key, size) of the files holding `topic`'s batches."""
    con = sqlite3.connect(f"file:{metadata_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute(
            "SELECT key, size FROM files WHERE id IN "
            "(SELECT DISTINCT file_ref FROM batches WHERE topic = ?)",
            (topic,),
        ).fetchall()
    finally:
        con.close()
    return [(str(k), int(n)) for k, n in rows]


def topic_blocks(metadata_path: Path, topic: str, block_bytes: int = 4 * MiB) -> int:
    """Blocks of the files holding `topic`: the GETs of one cold read of all of it."""
    con = sqlite3.connect(f"file:{metadata_path}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute(
            "SELECT coalesce(sum((size + ? - 1) / ?), 0) FROM files WHERE id IN "
            "(SELECT DISTINCT file_ref FROM batches WHERE topic = ?)",
            (block_bytes, block_bytes, topic),
        ).fetchone()
    finally:
        con.close()
    return int(row[0])


def get_bound(stored_bytes: int, files: int, block_bytes: int = 4 * MiB) -> float:
    """The issue's per-zone GET bound: 1.15 x (stored bytes / block) + segment files."""
    return 1.15 * stored_bytes / block_bytes + files


@contextmanager
def running_cluster(
    root: Path, agents: int, zones: int, extra_args: Iterable[str] = ()
) -> Iterator[Cluster]:
    cluster = Cluster(root, agents, zones, list(extra_args))
    try:
        yield cluster.start()
    finally:
        cluster.stop()
