"""The checker: a verify run's history in, a verdict out. Pure: no I/O, no clock, no broker.

What counts as a violation (each counted, with a few examples kept for the report):
- lost: a value acknowledged at (partition, offset) that the final read never returned.
- duplicated: a value seen at two or more distinct (partition, offset) positions, by the final
  read or by the live consumers.
- reordered: within one producer and one partition, a value read at a higher offset than a
  value of the same producer with a higher sequence number (idempotent producers keep order).
- inconsistent offsets: an acknowledged value read at another position than its ack said; two
  values at one position (across acks and reads); a value in another partition than it was sent
  to; an offset of the final read's range [start, end) that it did not return (Shoal's offsets
  are dense: there is nothing to explain a gap); a final read outside that range.
- unexpected: a value no producer of this run wrote.

Writes whose outcome is unknown or an error are "indeterminate": they may appear or not, and are
counted apart (seen or not seen); if they appear, the other checks apply to them as to any value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shoal.verify.history import History, Outcome, Read, Write, parse_value

EXAMPLES_MAX = 5
VIOLATIONS = ("lost", "duplicated", "reordered", "inconsistent_offsets", "unexpected")


@dataclass
class Verdict:
    acked: int = 0
    read: int = 0  # distinct values in the final read
    live_read: int = 0  # distinct values the live consumers got
    indeterminate: int = 0  # writes with an error or no answer
    indeterminate_read: int = 0  # ... of which the final read returned the value
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    inconsistent_offsets: int = 0
    unexpected: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def violations(self) -> int:
        return sum(getattr(self, name) for name in VIOLATIONS)

    @property
    def ok(self) -> bool:
        return self.violations == 0

    def note(self, kind: str, text: str, count: int = 1) -> None:
        setattr(self, kind, getattr(self, kind) + count)
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES_MAX:
            shown.append(text)

    def counts(self) -> dict[str, int]:
        names = ("acked", "read", "live_read", "indeterminate", "indeterminate_read")
        return {name: getattr(self, name) for name in (*names, *VIOLATIONS)}

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, **self.counts(), "examples": self.examples}


def check(history: History) -> Verdict:
    verdict = Verdict()
    writes: dict[str, Write] = {w.value: w for w in history.writes}
    final_reads = [r for p in sorted(history.final) for r in history.final[p]]
    all_reads = final_reads + history.live_reads
    final_values = {r.value for r in final_reads}
    verdict.read = len(final_values)
    verdict.live_read = len({r.value for r in history.live_reads})

    # Where each value was seen, and what each position held (acks count as observations).
    positions: dict[str, set[tuple[int, int]]] = defaultdict(set)
    held: dict[tuple[int, int], set[str]] = defaultdict(set)
    for r in all_reads:
        positions[r.value].add((r.partition, r.offset))
        held[(r.partition, r.offset)].add(r.value)
    for w in history.writes:
        if w.outcome is Outcome.OK and w.offset is not None:
            held[(w.partition, w.offset)].add(w.value)

    for w in history.writes:
        if w.outcome is not Outcome.OK:
            verdict.indeterminate += 1
            verdict.indeterminate_read += w.value in final_values
            continue
        verdict.acked += 1
        if w.value not in final_values:
            verdict.note("lost", f"{w.value} acked at {w.partition}@{w.offset}, never read")
        elif (w.partition, w.offset) not in positions[w.value]:
            seen = ", ".join(f"{p}@{o}" for p, o in sorted(positions[w.value]))
            text = f"{w.value} acked at {w.partition}@{w.offset}, read at {seen}"
            verdict.note("inconsistent_offsets", text)

    for v, where in positions.items():
        if len(where) > 1:
            seen = ", ".join(f"{p}@{o}" for p, o in sorted(where))
            verdict.note("duplicated", f"{v} read at {seen}")
        sent = writes.get(v)
        if sent is None:
            verdict.note("unexpected", f"{v!r} read at {min(where)}, never written")
            continue
        for p, o in sorted(where):
            if p != sent.partition:
                text = f"{v} sent to partition {sent.partition}, read at {p}@{o}"
                verdict.note("inconsistent_offsets", text)

    for (p, o), values in sorted(held.items()):
        if len(values) > 1:
            verdict.note("inconsistent_offsets", f"{p}@{o} holds {', '.join(sorted(values))}")

    for p in sorted(set(history.final) | set(history.final_end)):
        _check_partition(verdict, p, history.final.get(p, []), history)
    return verdict


def _check_partition(verdict: Verdict, partition: int, reads: list[Read], h: History) -> None:
    start = h.final_start.get(partition, 0)
    end = h.final_end.get(partition)
    offsets = {r.offset for r in reads}
    if end is not None:
        missing = [o for o in range(start, end) if o not in offsets]
        if missing:
            verdict.note(
                "inconsistent_offsets",
                f"partition {partition}: {len(missing)} offsets of [{start}, {end}) not read,"
                f" first {_ranges(missing)}",
                len(missing),
            )
        outside = sorted(o for o in offsets if not start <= o < end)
        if outside:
            verdict.note(
                "inconsistent_offsets",
                f"partition {partition}: read {_ranges(outside)} outside [{start}, {end})",
                len(outside),
            )
    # Per producer, sequence numbers must grow with the offset.
    highest: dict[int, tuple[int, int]] = {}  # producer -> (seq, offset) of the highest so far
    for r in sorted(reads, key=lambda r: r.offset):
        parsed = parse_value(r.value)
        if parsed is None:
            continue
        producer, seq = parsed
        top = highest.get(producer)
        if top is not None and seq < top[0]:
            verdict.note(
                "reordered",
                f"partition {partition}: {r.value} at offset {r.offset} after"
                f" {producer}:{top[0]} at offset {top[1]}",
            )
        elif top is None or seq > top[0]:
            highest[producer] = (seq, r.offset)


def _ranges(offsets: Iterable[int], shown: int = 3) -> str:
    """`[4-6, 9, 12-13, ...]` for sorted offsets."""
    spans: list[list[int]] = []
    for o in offsets:
        if spans and o == spans[-1][1] + 1:
            spans[-1][1] = o
        else:
            spans.append([o, o])
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in spans[:shown]]
    return "[" + ", ".join(text) + (", ..." if len(spans) > shown else "") + "]"
