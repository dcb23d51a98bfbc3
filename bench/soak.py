"""Soak benchmark: does what Shoal stores stay bounded under steady produce with retention and
file compaction on?

Starts `shoal playground --agents N --zones Z` (read_path's `Playground`) with compaction,
retention and the GC running every few seconds, creates one topic with `retention.ms` =
`--retention-ms`, and produces `--mib-per-s` of `--record-bytes` random values to it (one
idempotent confluent-kafka producer, round-robin over `--partitions`) for `--duration-s`. Every
`--sample-s` it records:

- the objects: bytes and count of the files under `<data-dir>/objects/segments`;
- the metadata rows: `files`, `batches` and `producer_state` in `<data-dir>/metadata.db` (read
  through a read-only SQLite connection);
- the counters summed over the agents: compaction files in/out, rows moved, retention offsets
  dropped, files the GC deleted;
- the topic's log start and high watermark, summed over its partitions.

**The verdict** ("bounded"): the samples are cut into thirds by time; for each of object bytes,
object count, `files` rows and `batches` rows, the largest value of the last third must not
exceed 1.5 x the largest of the middle third (`BOUND_FACTOR`). Steady state is reached once
retention has removed its first records (one `--retention-ms` plus a check interval after the
start), so the run must last well over three retention periods for the middle third to be
steady: the verdict says "too short" otherwise. Unbounded growth (files never merged, rows never
deleted, objects never collected) grows linearly and fails the rule in any run 1.5 x longer
than the retention; a slow leak smaller than half the steady state over a third of the run does
not.

    .venv/bin/python bench/soak.py                                   # 15 minutes, 2 MiB/s
    .venv/bin/python bench/soak.py --duration-s 240 --retention-ms 30000

Prints a table of the samples (rich), the verdict with the steady-state figures (means of the
last third), writes a PNG of the series over time to `--plot` (default `<root>/soak.png`), and
with `--json` the samples as JSON. Exit code 1 when not bounded or a produce failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from read_path import Playground, free_base

MiB = 1024 * 1024
BOUND_FACTOR = 1.5
BOUNDED_SERIES = ("object_bytes", "objects", "files_rows", "batches_rows")


@dataclass
class Sample:
    t_s: float
    acked_bytes: int
    objects: int
    object_bytes: int
    files_rows: int
    batches_rows: int
    producer_state_rows: int
    log_start: int  # summed over the partitions
    high_watermark: int
    compaction_files_in: float
    compaction_files_out: float
    compaction_rows_moved: float
    retention_offsets_dropped: float
    gc_deleted: float


@dataclass
class Bound:
    series: str
    middle_max: float
    last_max: float

    @property
    def ok(self) -> bool:
        return self.last_max <= BOUND_FACTOR * self.middle_max


def bounds(samples: list[Sample]) -> list[Bound]:
    """The rule of the module doc: max of the last third vs max of the middle third, by time."""
    if not samples:
        return []
    end = samples[-1].t_s
    middle = [s for s in samples if end / 3 <= s.t_s < 2 * end / 3]
    last = [s for s in samples if s.t_s >= 2 * end / 3]
    out = []
    for name in BOUNDED_SERIES:
        mid = max((float(getattr(s, name)) for s in middle), default=0.0)
        top = max((float(getattr(s, name)) for s in last), default=0.0)
        out.append(Bound(name, mid, top))
    return out


# -- what is stored -------------------------------------------------------------------------


def object_totals(segments: Path) -> tuple[int, int]:
    """(files, bytes) under the objects folder's `segments/` (a file may go as it is walked)."""
    count = size = 0
    for folder, _, names in os.walk(segments):
        for name in names:
            try:
                size += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
            count += 1
    return count, size


def table_rows(metadata: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{metadata}?mode=ro", uri=True, timeout=30)
    try:
        return {
            table: int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("files", "batches", "producer_state")
        }
    finally:
        con.close()


def total(pg: Playground, name: str, **labels: str) -> float:
    return sum(pg.counter_per_zone(name, **labels).values())


# -- the load -------------------------------------------------------------------------------


class SteadyProducer(threading.Thread):
    """`bytes_per_s` of `record_bytes` random values, round-robin over the partitions, paced
    against the clock from the start (a stall is caught up, within the producer's queue)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, bytes_per_s: float,
                 record_bytes: int) -> None:  # fmt: skip
        super().__init__(name="soak-producer", daemon=True)
        self.topic = topic
        self.partitions = partitions
        self.records_per_s = bytes_per_s / record_bytes
        self.record_bytes = record_bytes
        self.pool = os.urandom(record_bytes * 64)
        self.stop_event = threading.Event()
        self.acked_bytes = 0
        self.errors: list[str] = []
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "soak-producer",
                "enable.idempotence": True,
                "linger.ms": 20,
                "batch.size": 256 * 1024,
                "message.timeout.ms": 120_000,
            }
        )

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked_bytes += len(msg.value() or b"")

    def run(self) -> None:
        began = time.monotonic()
        i = 0
        try:
            while not self.stop_event.is_set():
                start = (i % 64) * self.record_bytes
                value = self.pool[start : start + self.record_bytes]
                try:
                    self.producer.produce(self.topic, value, partition=i % self.partitions,
                                          on_delivery=self._delivered)  # fmt: skip
                except BufferError:
                    self.producer.poll(0.05)
                    continue
                i += 1
                if i % 100 == 0:
                    self.producer.poll(0)
                    while (ahead := i / self.records_per_s - (time.monotonic() - began)) > 0:
                        self.producer.poll(ahead)
            left = self.producer.flush(60)
            if left:
                self.errors.append(f"{left} records never acked")
        finally:
            self.producer.close()


def create_topic(bootstrap: str, topic: str, partitions: int, retention_ms: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"retention.ms": str(retention_ms)}
    admin.create_topics([NewTopic(topic, partitions, 1, config=config)])[topic].result(60)


def watermark_sums(consumer: Consumer, topic: str, partitions: int) -> tuple[int, int]:
    low = high = 0
    for p in range(partitions):
        lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), 30)
        low, high = low + int(lo), high + int(hi)
    return low, high


def take_sample(pg: Playground, t_s: float, producer: SteadyProducer, marks: Consumer,
                topic: str, partitions: int) -> Sample:  # fmt: skip
    objects, object_bytes = object_totals(pg.data_dir / "objects" / "segments")
    rows = table_rows(pg.data_dir / "metadata.db")
    low, high = watermark_sums(marks, topic, partitions)
    return Sample(
        t_s=round(t_s, 1),
        acked_bytes=producer.acked_bytes,
        objects=objects,
        object_bytes=object_bytes,
        files_rows=rows["files"],
        batches_rows=rows["batches"],
        producer_state_rows=rows["producer_state"],
        log_start=low,
        high_watermark=high,
        compaction_files_in=total(pg, "shoal_compaction_files_total", kind="input"),
        compaction_files_out=total(pg, "shoal_compaction_files_total", kind="output"),
        compaction_rows_moved=total(pg, "shoal_compaction_rows_total", outcome="moved"),
        retention_offsets_dropped=total(pg, "shoal_retention_offsets_dropped_total"),
        gc_deleted=total(pg, "shoal_gc_deleted_files_total"),
    )


# -- the report -----------------------------------------------------------------------------

_COLUMNS: list[tuple[str, Callable[[Sample], str]]] = [
    ("t (s)", lambda s: f"{s.t_s:.0f}"),
    ("acked MiB", lambda s: f"{s.acked_bytes / MiB:.0f}"),
    ("objects", lambda s: f"{s.objects:,}"),
    ("object MiB", lambda s: f"{s.object_bytes / MiB:.1f}"),
    ("files rows", lambda s: f"{s.files_rows:,}"),
    ("batches rows", lambda s: f"{s.batches_rows:,}"),
    ("producer rows", lambda s: f"{s.producer_state_rows:,}"),
    ("log start", lambda s: f"{s.log_start:,}"),
    ("high wm", lambda s: f"{s.high_watermark:,}"),
    ("merged in/out", lambda s: f"{s.compaction_files_in:.0f}/{s.compaction_files_out:.0f}"),
    ("rows moved", lambda s: f"{s.compaction_rows_moved:,.0f}"),
    ("gc deleted", lambda s: f"{s.gc_deleted:,.0f}"),
]


def print_table(samples: list[Sample], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print("  ".join(name for name, _ in _COLUMNS))
        for s in samples:
            print("  ".join(cell(s) for _, cell in _COLUMNS))
        return
    t = Table(title=title, title_justify="left")
    for name, _ in _COLUMNS:
        t.add_column(name, justify="right")
    for s in samples:
        t.add_row(*(cell(s) for _, cell in _COLUMNS))
    Console(width=200).print(t)


def plot(samples: list[Sample], path: Path, title: str, live_bytes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t_s for s in samples]
    fig, (a, b, c, d) = plt.subplots(4, 1, figsize=(9, 9), sharex=True, dpi=80)
    a.plot(t, [s.object_bytes / MiB for s in samples], label="object MiB")
    a.axhline(live_bytes / MiB, color="gray", linestyle=":", label="rate x retention")
    a.set_ylabel("MiB")
    a.set_title(title, fontsize=10)
    b.plot(t, [s.objects for s in samples], label="objects")
    b.plot(t, [s.files_rows for s in samples], label="files rows")
    b.set_ylabel("count")
    c.plot(t, [s.batches_rows for s in samples], label="batches rows")
    c.plot(t, [s.producer_state_rows for s in samples], label="producer_state rows")
    c.set_ylabel("rows")
    d.plot(t, [s.log_start for s in samples], label="log start (sum)")
    d.plot(t, [s.high_watermark for s in samples], label="high watermark (sum)")
    d.set_ylabel("offset")
    d.set_xlabel("seconds since the first record")
    for axis in (a, b, c, d):
        axis.legend(fontsize=7, loc="upper left")
        axis.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _means(samples: list[Sample]) -> Callable[[str], float]:
    return lambda name: sum(float(getattr(s, name)) for s in samples) / len(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--zones", type=int, default=3)
    ap.add_argument("--mib-per-s", type=float, default=2.0)
    ap.add_argument("--record-bytes", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--duration-s", type=float, default=900.0)
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--retention-ms", type=int, default=60_000)
    ap.add_argument("--flush-interval-ms", type=int, default=100, help="as on S3")
    ap.add_argument("--compaction-interval-ms", type=int, default=5000)
    ap.add_argument("--compaction-file-bytes-target", type=int, default=16 * MiB)
    ap.add_argument("--retention-check-interval-ms", type=int, default=5000)
    ap.add_argument("--gc-interval-ms", type=int, default=5000)
    ap.add_argument("--gc-grace-ms", type=int, default=10_000)
    ap.add_argument("--data-dir", default=None, help="default: a temporary directory")
    ap.add_argument("--plot", default=None, help="PNG path (default <data-dir>/soak.png)")
    ap.add_argument("--json", action="store_true", help="also print the samples as JSON")
    args = ap.parse_args()
    if args.sample_s <= 0 or args.duration_s < 3 * args.sample_s:
        ap.error("--duration-s must hold at least three samples")

    root = Path(args.data_dir or tempfile.mkdtemp(prefix="shoal-soak-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    plot_path = Path(args.plot) if args.plot else root / "soak.png"
    flags = [
        "--flush-interval-ms", str(args.flush_interval_ms),
        "--compaction-interval-ms", str(args.compaction_interval_ms),
        "--compaction-file-bytes-target", str(args.compaction_file_bytes_target),
        "--retention-check-interval-ms", str(args.retention_check_interval_ms),
        "--gc-interval-ms", str(args.gc_interval_ms),
        "--gc-grace-ms", str(args.gc_grace_ms),
    ]  # fmt: skip
    pg = Playground(root / "data", args.agents, args.zones, free_base(args.agents, 22000),
                    free_base(args.agents, 32000), flags)  # fmt: skip
    pg.data_dir.mkdir(exist_ok=True)
    topic = f"soak-{uuid.uuid4().hex[:6]}"
    print(f"shoal playground --agents {args.agents} --zones {args.zones} {' '.join(flags)}"
          f"\n  data in {root}; {args.mib_per_s:g} MiB/s to {topic} ({args.partitions}"
          f" partitions, retention.ms {args.retention_ms}) for {args.duration_s:.0f} s",
          flush=True)  # fmt: skip
    samples: list[Sample] = []
    producer: SteadyProducer | None = None
    try:
        pg.start()
        create_topic(pg.bootstrap(), topic, args.partitions, args.retention_ms)
        producer = SteadyProducer(pg.bootstrap(), topic, args.partitions,
                                  args.mib_per_s * MiB, args.record_bytes)  # fmt: skip
        marks = Consumer({"bootstrap.servers": pg.bootstrap(), "group.id": "soak-marks"})
        try:
            started = time.monotonic()
            producer.start()
            next_at = started + args.sample_s
            while (now := time.monotonic()) - started < args.duration_s:
                if not producer.is_alive():
                    raise RuntimeError("the producer stopped")
                if now < next_at:
                    time.sleep(min(next_at - now, 1.0))
                    continue
                next_at += args.sample_s
                samples.append(take_sample(pg, now - started, producer, marks, topic,
                                           args.partitions))  # fmt: skip
                s = samples[-1]
                print(f"  t={s.t_s:5.0f}s acked {s.acked_bytes / MiB:7.1f} MiB, objects"
                      f" {s.objects} ({s.object_bytes / MiB:.1f} MiB), rows files"
                      f" {s.files_rows} batches {s.batches_rows}", flush=True)  # fmt: skip
        finally:
            marks.close()
    finally:
        if producer is not None:
            producer.stop_event.set()
            producer.join(90)
        pg.stop()

    live_bytes = args.mib_per_s * MiB * args.retention_ms / 1000
    title = (f"soak: {args.mib_per_s:g} MiB/s, retention {args.retention_ms / 1000:g} s,"
             f" {args.agents} agents, {args.duration_s:.0f} s")  # fmt: skip
    print_table(samples, title)
    plot(samples, plot_path, title, live_bytes)
    checked = bounds(samples)
    end = samples[-1].t_s if samples else 0.0
    steady_from = args.retention_ms / 1000 + args.retention_check_interval_ms / 1000
    too_short = end / 3 < steady_from
    ok = all(b.ok for b in checked) and not too_short
    for b in checked:
        print(f"  {b.series}: max of the last third {b.last_max:,.0f} vs {BOUND_FACTOR} x max of"
              f" the middle third {BOUND_FACTOR * b.middle_max:,.0f}: "
              f"{'ok' if b.ok else 'GREW'}")  # fmt: skip
    last = [s for s in samples if s.t_s >= 2 * end / 3]
    if last:
        mean = _means(last)
        first, final = samples[0], samples[-1]
        rate = (final.acked_bytes - first.acked_bytes) / max(final.t_s - first.t_s, 1.0) / MiB
        print(f"  steady state (means of the last third): {mean('object_bytes') / MiB:.1f} MiB"
              f" in {mean('objects'):.0f} objects (rate x retention = {live_bytes / MiB:.0f}"
              f" MiB), files rows {mean('files_rows'):.0f}, batches rows"
              f" {mean('batches_rows'):.0f}, producer_state rows"
              f" {mean('producer_state_rows'):.0f}; produced {rate:.2f} MiB/s; compaction"
              f" {final.compaction_files_in:.0f} files into {final.compaction_files_out:.0f},"
              f" GC deleted {final.gc_deleted:.0f}")  # fmt: skip
    errors = producer.errors if producer is not None else ["no producer"]
    if errors:
        print(f"  produce errors: {len(errors)}, first {errors[:3]}")
    verdict = "too short" if too_short else ("bounded" if ok else "NOT BOUNDED")
    print(f"verdict: {verdict} (rule: last third <= {BOUND_FACTOR} x middle third, for"
          f" {', '.join(BOUNDED_SERIES)}); plot {plot_path}")  # fmt: skip
    if args.json:
        print(json.dumps([asdict(s) for s in samples], indent=1))
    return 0 if ok and not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
