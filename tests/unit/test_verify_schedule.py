"""The fault schedule format of `shoal verify --faults`."""

from __future__ import annotations

import pytest

from shoal.verify.schedule import Fault, parse, parse_seconds


def test_times() -> None:
    assert parse_seconds("500ms") == 0.5
    assert parse_seconds("30s") == 30 and parse_seconds("30") == 30
    assert parse_seconds("2m") == 120 and parse_seconds("1.5s") == 1.5
    with pytest.raises(ValueError):
        parse_seconds("soon")


def test_a_full_schedule() -> None:
    faults = parse("stop:60s:10s,kill:30s,s3-503:90s:15s,s3-slow:2m:10s:800ms,pg-restart:150s", 3)
    assert faults == [
        Fault("kill", 30, 1.0, agent=1),
        Fault("stop", 60, 10, agent=2),
        Fault("s3-503", 90, 15),
        Fault("s3-slow", 120, 10, delay_ms=800),
        Fault("pg-restart", 150, 1.0),
    ]


def test_agents_named_or_in_turn() -> None:
    assert [f.agent for f in parse("kill@0:1s,kill:2s,kill:3s,stop:4s:1s", 2)] == [0, 1, 0, 1]
    assert parse("", 3) == []


@pytest.mark.parametrize(
    "raw",
    [
        "crash:10s",  # unknown kind
        "kill",  # no start time
        "stop:10s",  # no duration
        "s3-503:10s",  # no duration
        "kill:1s:2s:3s",  # too many fields
        "kill@5:10s",  # no agent 5
        "s3-503@1:10s:1s",  # agent on a non-agent fault
    ],
)
def test_bad_schedules_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        parse(raw, 3)


def test_agent_faults_need_agents() -> None:
    with pytest.raises(ValueError, match="no agents"):
        parse("kill:10s", None)
    assert parse("s3-503:10s:5s", None)[0].kind == "s3-503"
