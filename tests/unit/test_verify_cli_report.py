"""`shoal verify`'s flags and SHOAL_VERIFY_* variables, its usage errors, and the per-second
timeline of the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.cli import build_parser, main, verify_config_from
from shoal.verify.history import History, Outcome, Read, Write
from shoal.verify.report import timeline
from shoal.verify.run import VerifyConfig


def _config(argv: list[str], env: dict[str, str] | None = None) -> VerifyConfig:
    return verify_config_from(build_parser().parse_args(["verify", *argv]), env or {})


def test_defaults_environment_and_flags() -> None:
    assert _config([]) == VerifyConfig(bootstrap=None)
    env = {
        "SHOAL_VERIFY_BOOTSTRAP": "h:1", "SHOAL_VERIFY_PARTITIONS": "3",
        "SHOAL_VERIFY_JSON": "true", "SHOAL_VERIFY_PIDS": "10,11",
        "SHOAL_VERIFY_AGENT_ARGS": "--heartbeat-timeout-ms 3000",
    }  # fmt: skip
    c = _config(["--partitions", "5", "--report", "out", "--faults", "stop:1s:1s"], env)
    assert c.bootstrap == "h:1" and c.partitions == 5 and c.json and c.pids == (10, 11)
    assert c.report_dir == Path("out") and c.faults == "stop:1s:1s"
    assert c.agent_args == ("--heartbeat-timeout-ms", "3000")


def test_bad_values_are_refused() -> None:
    with pytest.raises(SystemExit):
        _config(["--object-store", "tape"])
    with pytest.raises(SystemExit, match="SHOAL_VERIFY_PARTITIONS"):
        _config([], {"SHOAL_VERIFY_PARTITIONS": "many"})


@pytest.mark.parametrize(
    "argv",
    [
        [],  # neither --bootstrap nor --playground
        ["--bootstrap", "h:1", "--playground", "2"],
        ["--bootstrap", "h:1", "--faults", "kill:1s"],  # no pids to kill
        ["--bootstrap", "h:1", "--faults", "crash:1s"],
        ["--playground", "2", "--faults", "s3-503:1s:1s"],  # local store: no proxy
        ["--playground", "2", "--faults", "pg-restart:1s"],  # SQLite
        ["--playground", "2", "--duration-s", "10", "--faults", "kill:9s:2s"],  # past the end
        ["--bootstrap", "h:1", "--metadata", "postgres"],  # for --playground only
        ["--playground", "2", "--pids", "1,2"],
    ],
)
def test_usage_errors_exit_2_before_starting_anything(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--report", str(tmp_path / "r"), *argv]) == 2
    assert "shoal verify:" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_timeline_per_second() -> None:
    h = History(partitions=1)
    h.writes = [
        Write(0, 0, 0, 0.1, Outcome.OK, 0, 0.2),  # 100 ms
        Write(0, 1, 0, 0.5, Outcome.OK, 1, 0.9),  # 400 ms
        Write(0, 2, 0, 1.0, Outcome.ERROR, None, 2.5, "timed out"),
        Write(0, 3, 0, 1.1, Outcome.UNKNOWN),
    ]
    h.live_reads = [Read(0, 0, "0:0", 0.3), Read(0, 1, "0:1", 1.2), Read(0, 1, "0:1", 1.3)]
    rows = timeline(h)
    assert [(r.t, r.acks, r.errors, r.reads) for r in rows] == [(0, 2, 0, 1), (1, 0, 0, 2),
                                                               (2, 0, 1, 0)]  # fmt: skip
    assert rows[0].p50_ms == pytest.approx(100) and rows[0].p99_ms == pytest.approx(400)
    assert rows[1].p50_ms is None
