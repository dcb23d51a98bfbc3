"""`FaultRunner` carries a schedule out against a target (a fake here) and records the windows
the faults really took, overlapping ones included."""

from __future__ import annotations

import signal
import time

from shoal.verify.schedule import parse
from shoal.verify.target import FaultRunner, Target


class FakeTarget(Target):
    def __init__(self) -> None:
        self.bootstrap = "fake:1"
        self.calls: list[tuple[str, object]] = []

    def kill(self, agent: int) -> None:
        self.calls.append(("kill", agent))

    def restart(self, agent: int) -> None:
        self.calls.append(("restart", agent))

    def signal(self, agent: int, signum: int) -> None:
        self.calls.append((signal.Signals(signum).name, agent))

    def s3_faults(self, for_s: float, *, slowdown: bool, delay_ms: int) -> None:
        self.calls.append(("s3", (slowdown, delay_ms)))

    def pg_stop(self) -> None:
        self.calls.append(("pg_stop", None))

    def pg_start(self) -> None:
        self.calls.append(("pg_start", None))


def test_a_schedule_is_carried_out_and_its_windows_recorded() -> None:
    target = FakeTarget()
    faults = parse("kill:0.05:0.1,stop@0:0.05:0.2,s3-slow:0.1:0.1:250ms,pg-restart:0.3:0.05", 2)
    t0 = time.monotonic()
    runner = FaultRunner(target, faults, lambda: time.monotonic() - t0)
    runner.start()
    runner.join(5)
    assert not runner.failures
    assert target.calls.index(("kill", 1)) < target.calls.index(("restart", 1))
    assert target.calls.index(("SIGSTOP", 0)) < target.calls.index(("SIGCONT", 0))
    assert ("s3", (False, 250)) in target.calls
    assert target.calls.index(("pg_stop", None)) < target.calls.index(("pg_start", None))
    windows = {w.kind: w for w in runner.windows}
    assert windows["kill"].target == "agent 1" and windows["stop"].target == "agent 0"
    assert windows["stop"].end_s - windows["stop"].start_s >= 0.2
    assert windows["stop"].start_s < windows["kill"].end_s  # they overlapped
    assert windows["pg-restart"].start_s >= 0.3


def test_a_failing_fault_is_reported_and_the_others_run() -> None:
    class Broken(FakeTarget):
        def pg_stop(self) -> None:
            raise RuntimeError("pg_ctl failed")

    target = Broken()
    t0 = time.monotonic()
    runner = FaultRunner(target, parse("pg-restart:0:0,kill:0:0", 2), lambda: time.monotonic() - t0)
    runner.start()
    runner.join(5)
    assert len(runner.failures) == 1 and "pg_ctl failed" in runner.failures[0]
    assert ("restart", 1) in target.calls and len(runner.windows) == 2
