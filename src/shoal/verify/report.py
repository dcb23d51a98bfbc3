"""The report of a verify run: a table (rich) on stdout or JSON, and in the report directory
`verdict.json`, `timeline.csv` and `timeline.png` (throughput, ack latency, fault windows).

`timeline` is pure (history in, one row per second out); the plot is drawn from its rows.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.verify.checker import VIOLATIONS, Verdict
from shoal.verify.history import FaultWindow, History, Outcome

_LABELS = {
    "acked": "acked",
    "read": "read (final read, distinct)",
    "live_read": "read (live consumers, distinct)",
    "indeterminate": "indeterminate (error or no answer)",
    "indeterminate_read": "  of which read",
    "lost": "lost",
    "duplicated": "duplicated",
    "reordered": "reordered",
    "inconsistent_offsets": "inconsistent offsets",
    "unexpected": "unexpected values",
}


@dataclass(frozen=True, slots=True)
class Second:
    t: int
    acks: int
    errors: int
    reads: int
    p50_ms: float | None
    p99_ms: float | None


def _quantile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def timeline(history: History) -> list[Second]:
    """Per second of the run: acks and errors (by when they arrived), live reads, and the
    p50/p99 ack latency of the values acked in that second."""
    latencies: dict[int, list[float]] = defaultdict(list)
    errors: dict[int, int] = defaultdict(int)
    reads: dict[int, int] = defaultdict(int)
    for w in history.writes:
        if w.acked_s is None:
            continue
        second = int(w.acked_s)
        if w.outcome is Outcome.OK:
            latencies[second].append((w.acked_s - w.sent_s) * 1000)
        else:
            errors[second] += 1
    for r in history.live_reads:
        reads[int(r.at_s)] += 1
    last = max([*latencies, *errors, *reads, 0])
    out: list[Second] = []
    for t in range(last + 1):
        lat = sorted(latencies.get(t, []))
        out.append(
            Second(
                t, len(lat), errors.get(t, 0), reads.get(t, 0),
                _quantile(lat, 0.50) if lat else None, _quantile(lat, 0.99) if lat else None,
            )
        )  # fmt: skip
    return out


def table(verdict: Verdict, title: str) -> Any:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("count")
    t.add_column("values", justify="right")
    for name, number in verdict.counts().items():
        style = "bold red" if name in VIOLATIONS and number else None
        t.add_row(_LABELS[name], f"{number:,}", style=style)
    t.add_row("verdict", "ok" if verdict.ok else "FAILED", style="bold")
    return t


def print_table(verdict: Verdict, title: str) -> None:
    from rich.console import Console

    console = Console()
    console.print(table(verdict, title))
    for kind, examples in verdict.examples.items():
        for text in examples:
            console.print(f"  {kind}: {text}", markup=False, highlight=False)


def markdown_table(verdict: Verdict) -> str:
    lines = ["| count | values |", "|---|---:|"]
    lines += [f"| {_LABELS[k]} | {v:,} |" for k, v in verdict.counts().items()]
    return "\n".join(lines)


def write_files(
    directory: Path, verdict: Verdict, history: History, run: dict[str, Any]
) -> list[Path]:
    """verdict.json, timeline.csv, timeline.png under `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = timeline(history)
    faults = [_fault_json(f) for f in history.faults]
    doc = {"run": run, "verdict": verdict.to_json(), "faults": faults}
    verdict_path = directory / "verdict.json"
    verdict_path.write_text(json.dumps(doc, indent=2) + "\n")
    csv_path = directory / "timeline.csv"
    with csv_path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["second", "acks", "errors", "reads", "ack_p50_ms", "ack_p99_ms"])
        for r in rows:
            out.writerow([r.t, r.acks, r.errors, r.reads, _num(r.p50_ms), _num(r.p99_ms)])
    png_path = directory / "timeline.png"
    plot(rows, history.faults, png_path, title=str(run.get("title", "shoal verify")))
    return [verdict_path, csv_path, png_path]


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _fault_json(f: FaultWindow) -> dict[str, Any]:
    return {"kind": f.kind, "target": f.target, "start_s": round(f.start_s, 3),
            "end_s": round(f.end_s, 3)}  # fmt: skip


_FAULT_COLOURS = {
    "kill": "tab:red", "stop": "tab:orange", "s3-503": "tab:purple", "s3-slow": "tab:pink",
    "pg-restart": "tab:brown",
}  # fmt: skip


def plot(rows: list[Second], faults: list[FaultWindow], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r.t for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, dpi=80)
    top.plot(t, [r.acks for r in rows], label="acks/s", linewidth=1)
    top.plot(t, [r.reads for r in rows], label="reads/s (all live consumers)", linewidth=1)
    if any(r.errors for r in rows):
        top.plot(t, [r.errors for r in rows], label="errors/s", linewidth=1, color="black")
    top.set_ylabel("values / s")
    top.set_title(title, fontsize=10)
    nan = float("nan")
    bottom.plot(t, [nan if r.p50_ms is None else r.p50_ms for r in rows], label="ack p50")
    bottom.plot(t, [nan if r.p99_ms is None else r.p99_ms for r in rows], label="ack p99")
    bottom.set_yscale("log")
    bottom.set_ylabel("ack latency (ms)")
    bottom.set_xlabel("seconds since start")
    seen: set[str] = set()
    for f in faults:
        colour = _FAULT_COLOURS.get(f.kind, "tab:gray")
        label = None if f.kind in seen else f.kind
        seen.add(f.kind)
        for axis in (top, bottom):
            axis.axvspan(f.start_s, max(f.end_s, f.start_s + 0.5), color=colour, alpha=0.2,
                         label=label if axis is top else None)  # fmt: skip
    top.legend(fontsize=7, loc="upper right", ncol=3)
    bottom.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
