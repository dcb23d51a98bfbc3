"""The fault schedule of a verify run: `kind[@agent]:at[:duration[:amount]]`, comma-separated.

    kill:30s,stop:60s:10s,s3-503:90s:15s,s3-slow:120s:10s:800ms,pg-restart:150s

Kinds (times are `500ms`, `30s`, `2m` or plain seconds, from the start of the workload):
- `kill:AT[:DOWN]`: SIGKILL an agent, restart it DOWN later (default 1 s).
- `stop:AT:FOR`: SIGSTOP an agent, SIGCONT it FOR later.
- `s3-503:AT:FOR`: the fault proxy answers every object-store request with 503 SlowDown.
- `s3-slow:AT:FOR[:DELAY]`: the fault proxy delays every object-store request (default 500 ms).
- `pg-restart:AT[:DOWN]`: stop PostgreSQL (immediate mode), start it DOWN later (default 1 s).

`kill` and `stop` hit agent `@i` when given, else agents in turn (the first agent fault agent
1 mod N, the next 2 mod N, ...: agent 0 keeps the topic's creation and the bootstrap). Pure:
parsing and validation only; `target` carries the faults out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AGENT_KINDS = frozenset({"kill", "stop"})
S3_KINDS = frozenset({"s3-503", "s3-slow"})
KINDS = AGENT_KINDS | S3_KINDS | {"pg-restart"}
_DEFAULT_FOR_S = {"kill": 1.0, "pg-restart": 1.0}  # the others need a duration
_DEFAULT_S3_DELAY_MS = 500
_TIME = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    at_s: float
    for_s: float  # down time (kill, pg-restart) or length of the fault (stop, s3-*)
    agent: int | None = None  # kill, stop
    delay_ms: int = 0  # s3-slow

    def describe(self) -> str:
        target = f"@{self.agent}" if self.agent is not None else ""
        extra = f" +{self.delay_ms}ms" if self.delay_ms else ""
        return f"{self.kind}{target} at {self.at_s:g}s for {self.for_s:g}s{extra}"


def parse_seconds(raw: str) -> float:
    m = _TIME.match(raw.strip())
    if m is None:
        raise ValueError(f"not a time: {raw!r} (e.g. 500ms, 30s, 2m)")
    number, unit = float(m.group(1)), m.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def parse(raw: str, agents: int | None = None) -> list[Fault]:
    """The faults of `raw`, sorted by start time; agent faults given a target among `agents`
    (None: no agents to hit, so agent faults are refused)."""
    faults: list[Fault] = []
    turn = 0
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        fields = item.split(":")
        head, _, agent_raw = fields[0].partition("@")
        kind = head.strip().lower()
        if kind not in KINDS:
            raise ValueError(f"{item!r}: unknown fault kind {kind!r} (one of {sorted(KINDS)})")
        if len(fields) < 2:
            raise ValueError(f"{item!r}: a fault needs a start time, e.g. {kind}:30s")
        max_fields = 4 if kind == "s3-slow" else 3
        if len(fields) > max_fields:
            raise ValueError(f"{item!r}: too many fields for {kind}")
        at_s = parse_seconds(fields[1])
        if len(fields) >= 3:
            for_s = parse_seconds(fields[2])
        elif kind in _DEFAULT_FOR_S:
            for_s = _DEFAULT_FOR_S[kind]
        else:
            raise ValueError(f"{item!r}: {kind} needs a duration, e.g. {kind}:{fields[1]}:10s")
        delay_ms = 0
        if kind == "s3-slow":
            delay_ms = (
                round(parse_seconds(fields[3]) * 1000) if len(fields) == 4 else _DEFAULT_S3_DELAY_MS
            )
        agent: int | None = None
        if agent_raw and kind not in AGENT_KINDS:
            raise ValueError(f"{item!r}: only kill and stop take an agent")
        if kind in AGENT_KINDS:
            if not agents:
                raise ValueError(
                    f"{item!r}: no agents to {kind} (give --playground, --pids or --broker-command)"
                )
            if agent_raw:
                if not agent_raw.isdigit() or int(agent_raw) >= agents:
                    raise ValueError(f"{item!r}: no agent {agent_raw} (agents 0..{agents - 1})")
                agent = int(agent_raw)
        faults.append(Fault(kind, at_s, for_s, agent, delay_ms))
    faults.sort(key=lambda f: f.at_s)
    # Agents in turn, in the order the faults happen.
    for i, f in enumerate(faults):
        if f.kind in AGENT_KINDS and f.agent is None and agents:
            turn += 1
            faults[i] = Fault(f.kind, f.at_s, f.for_s, turn % agents, f.delay_ms)
    return faults
