"""Tables of the results: medians over rounds, ratios against the peers, every round."""

from __future__ import annotations

import statistics

from bench_model import BrokerResult, Workload, fmt_bytes


def _cell(value: float | None, width: int, digits: int = 1) -> str:
    return (f"{value:.{digits}f}" if value is not None else "-").rjust(width)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


_MEDIAN_FIELDS = (
    "produce_mb_s",
    "produce_records_s",
    "consume_mb_s",
    "consume_records_s",
    "latency_achieved_rate",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "produce_wall_seconds",
    "consume_wall_seconds",
    "consume_join_ms",
)
# The brokers Shoal is measured against; every other row gets a ratio row against each.
PEERS = ("tansu", "kafka")
CLIENT_TITLES = {
    "librdkafka": "client librdkafka (confluent-kafka in the bench process)",
    "java": "client java (Kafka 4.4 kafka-producer-perf-test / kafka-consumer-perf-test)",
}


def combine_rounds(rounds: list[BrokerResult]) -> BrokerResult:
    """One broker's rounds as one row: the median of each figure over the rounds that
    measured it; not ok if any round failed (its first error is kept)."""
    first = rounds[0]
    combined = BrokerResult(broker=first.broker, client=first.client, ok=all(r.ok for r in rounds))
    combined.error = next((r.error for r in rounds if r.error), None)
    for field in _MEDIAN_FIELDS:
        values = [v for r in rounds if (v := getattr(r, field)) is not None]
        setattr(combined, field, statistics.median(values) if values else None)
    combined.produce_records = sum(r.produce_records for r in rounds)
    combined.produce_errors = sum(r.produce_errors for r in rounds)
    combined.consume_records = sum(r.consume_records for r in rounds)
    combined.latency_records = sum(r.latency_records for r in rounds)
    combined.latency_errors = sum(r.latency_errors for r in rounds)
    return combined


def render_rounds(per_broker: dict[str, list[BrokerResult]]) -> str:
    """Each round's produce and consume figures, so the spread behind the medians shows."""
    lines = ["per round, produce / consume MB/s:"]
    width = max([18, *(len(name) + 2 for name in per_broker)])
    for name, rounds in per_broker.items():
        cells = "  ".join(
            f"{_cell(r.produce_mb_s, 0, 0).strip()}/{_cell(r.consume_mb_s, 0, 0).strip()}"
            for r in rounds
        )
        lines.append(f"  {name:<{width}}{cells}")
    return "\n".join(lines)


def _peer_of(broker: str) -> bool:
    return broker.split()[0] in PEERS


def ratio_pairs(results: list[BrokerResult]) -> list[tuple[BrokerResult, BrokerResult]]:
    """(row, peer) pairs of one client's rows: every Shoal row against every peer that ran
    (Tansu, Kafka); with no peer in the run, every row against the last."""
    peers = [r for r in results if _peer_of(r.broker)]
    others = [r for r in results if not _peer_of(r.broker)]
    if not peers:
        if len(results) < 2:
            return []
        peers, others = results[-1:], results[:-1]
    return [(a, b) for b in peers for a in others]


def _client_rows(results: list[BrokerResult]) -> list[str]:
    lines = []
    for r in results:
        at = f"{r.latency_achieved_rate:.0f} rec/s" if r.latency_achieved_rate else ""
        if at and r.client == "java":
            at += " (full load)"
        row = (
            f"{r.broker:<20}{_cell(r.produce_mb_s, 13)}{_cell(r.consume_mb_s, 14)}"
            f"{_cell(r.p50_ms, 9)}{_cell(r.p99_ms, 9)}{_cell(r.max_ms, 9)}  {at}"
        )
        if r.error:
            row += f"  ({r.error.splitlines()[0][:80]})"
        lines.append(row.rstrip())
    for a, b in ratio_pairs(results):
        label = f"ratio {a.broker}/{b.broker}"
        if len(label) > 19:  # its own line, so the figures stay under their columns
            lines.append(label)
            label = ""
        lines.append(
            f"{label:<20}"
            f"{_cell(_ratio(a.produce_mb_s, b.produce_mb_s), 13, 2)}"
            f"{_cell(_ratio(a.consume_mb_s, b.consume_mb_s), 14, 2)}"
            f"{_cell(_ratio(a.p50_ms, b.p50_ms), 9, 2)}"
            f"{_cell(_ratio(a.p99_ms, b.p99_ms), 9, 2)}"
            f"{_cell(_ratio(a.max_ms, b.max_ms), 9, 2)}"
        )
    return lines


def render_table(wl: Workload, results: list[BrokerResult], rounds: int = 1) -> str:
    """Each client's rows (in the order they ran) with their ratio rows under them; a run of
    librdkafka alone prints no client heading, as before there was a choice."""
    idem = "idempotent" if wl.idempotence else "not idempotent"
    lines = [
        f"workload: {wl.record_bytes} B records, {wl.partitions} partitions,"
        f" {fmt_bytes(wl.total_bytes)}, compression {wl.compression}, acks=all, {idem}",
    ]
    if rounds > 1:
        lines.append(f"medians of {rounds} rounds, brokers interleaved in each round")
    lines += [
        f"{'broker':<20}{'produce MB/s':>13}{'consume MB/s':>14}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}  latency at",
    ]
    clients = list(dict.fromkeys(r.client for r in results))
    for client in clients:
        if clients != ["librdkafka"]:
            lines.append(CLIENT_TITLES.get(client, f"client {client}"))
        lines += _client_rows([r for r in results if r.client == client])
    if len(results) > 1:
        lines.append("(ratios: throughput higher is better, latency lower is better)")
    return "\n".join(lines)


def java_caveats(results: list[BrokerResult]) -> list[str]:
    """What the java rows measure and leave out, with the JVM start-up the tools' figures do
    not include (median wall time of each tool, per broker)."""
    lines = [
        "java rows: the tools' own summaries. Each tool is a fresh JVM whose start-up (below) is"
        " not in its figures, but its JIT warm-up is; produce uses the Java producer's defaults"
        " (batch.size 16384, linger.ms 5) and one payload for every record; consume MB/s runs"
        " from the end of the group join to the last record; p50/p99/max are the producer's"
        " send-to-ack latencies at full load, not at half of the peak like librdkafka's.",
    ]
    for r in results:
        if r.client != "java":
            continue
        lines.append(
            f"  {r.broker}: produce tool {_cell(r.produce_wall_seconds, 0).strip()} s,"
            f" consume tool {_cell(r.consume_wall_seconds, 0).strip()} s wall with the JVM;"
            f" group join {_cell(r.consume_join_ms, 0, 0).strip()} ms"
        )
    return lines
