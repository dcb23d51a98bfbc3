"""Tables of the results: medians over rounds, ratios against the peer, every round."""

from __future__ import annotations

import statistics

from bench_model import BrokerResult, Workload, fmt_bytes


def _cell(value: float | None, width: int, digits: int = 1) -> str:
    return (f"{value:.{digits}f}" if value is not None else "-").rjust(width)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


_MEDIAN_FIELDS = (
    "produce_mb_s",
    "consume_mb_s",
    "latency_achieved_rate",
    "p50_ms",
    "p99_ms",
    "max_ms",
)


def combine_rounds(rounds: list[BrokerResult]) -> BrokerResult:
    """One broker's rounds as one row: the median of each figure over the rounds that
    measured it; not ok if any round failed (its first error is kept)."""
    first = rounds[0]
    combined = BrokerResult(broker=first.broker, ok=all(r.ok for r in rounds))
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
    for name, rounds in per_broker.items():
        cells = "  ".join(
            f"{_cell(r.produce_mb_s, 0, 0).strip()}/{_cell(r.consume_mb_s, 0, 0).strip()}"
            for r in rounds
        )
        lines.append(f"  {name:<18}{cells}")
    return "\n".join(lines)


def render_table(wl: Workload, results: list[BrokerResult], rounds: int = 1) -> str:
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
    for r in results:
        at = f"{r.latency_achieved_rate:.0f} rec/s" if r.latency_achieved_rate else ""
        row = (
            f"{r.broker:<20}{_cell(r.produce_mb_s, 13)}{_cell(r.consume_mb_s, 14)}"
            f"{_cell(r.p50_ms, 9)}{_cell(r.p99_ms, 9)}{_cell(r.max_ms, 9)}  {at}"
        )
        if r.error:
            row += f"  ({r.error.splitlines()[0][:80]})"
        lines.append(row.rstrip())
    # Every other broker against the peer (Tansu; the last broker when Tansu did not run).
    b = next((r for r in results if r.broker.startswith("tansu")), results[-1])
    for a in results:
        if a is b:
            continue
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
    if len(results) > 1:
        lines.append("(ratios: throughput higher is better, latency lower is better)")
    return "\n".join(lines)
