"""What the clients of a verify run saw: every write with its outcome, every read.

Plain data, built by the workload (or by hand in tests) and judged by `checker`, which knows
nothing of the system under test. Times are seconds since the start of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Outcome(Enum):
    OK = "ok"  # acknowledged, with a (partition, offset)
    ERROR = "error"  # the client reported a failure: the write may or may not have happened
    UNKNOWN = "unknown"  # no answer before the run ended


@dataclass(frozen=True, slots=True)
class Write:
    """One value a producer sent. Values are unique in a run: `value(producer, seq)`."""

    producer: int
    seq: int
    partition: int
    sent_s: float
    outcome: Outcome
    offset: int | None = None  # the acknowledged offset (OK only)
    acked_s: float | None = None  # when the ack or the error arrived
    error: str | None = None

    @property
    def value(self) -> str:
        return value(self.producer, self.seq)


@dataclass(frozen=True, slots=True)
class Read:
    """One record a consumer got: where it was and what it held."""

    partition: int
    offset: int
    value: str
    at_s: float = 0.0


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """A fault as it really happened (for the report): from its start to its end."""

    kind: str
    target: str
    start_s: float
    end_s: float


@dataclass
class History:
    """A whole run. `final` holds the final read of each partition from its start;
    `final_end` the end offset (high watermark) that read went up to, and `final_start` the
    first offset the broker reported (0 unless records were deleted)."""

    partitions: int
    writes: list[Write] = field(default_factory=list)
    live_reads: list[Read] = field(default_factory=list)
    final: dict[int, list[Read]] = field(default_factory=dict)
    final_start: dict[int, int] = field(default_factory=dict)
    final_end: dict[int, int] = field(default_factory=dict)
    faults: list[FaultWindow] = field(default_factory=list)


def value(producer: int, seq: int) -> str:
    return f"{producer}:{seq}"


def parse_value(raw: str) -> tuple[int, int] | None:
    """(producer, seq) of a value this workload wrote; None for anything else."""
    head, sep, tail = raw.partition(":")
    if not sep or not head.isdigit() or not tail.isdigit():
        return None
    return int(head), int(tail)
