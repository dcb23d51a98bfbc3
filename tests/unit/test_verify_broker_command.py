"""`shoal verify --broker-command`: its flag and variable, the combinations it refuses before
starting anything, and `CommandTarget` killing (the whole process group), restarting and
stopping a broker it started: here a few lines of Python that listen on a port."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from shoal.cli import build_parser, main, verify_config_from
from shoal.common.ports import free_port
from shoal.verify.run import VerifyConfig
from shoal.verify.target import CommandTarget, split_host_port

# Listens on argv[1]; with argv[2], forks a child that sleeps in the same process group and
# writes its pid there (a shell wrapper's broker, as it were).
_LISTENER = """
import os, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
if len(sys.argv) > 2 and os.fork() == 0:
    open(sys.argv[2], "w").write(str(os.getpid()))
    time.sleep(120)
    os._exit(0)
time.sleep(120)
"""


def _config(argv: list[str], env: dict[str, str] | None = None) -> VerifyConfig:
    return verify_config_from(build_parser().parse_args(["verify", *argv]), env or {})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead
        return f.read().split()[2] != "Z"


def test_flag_and_environment() -> None:
    c = _config(["--broker-command", "tansu broker --storage-engine 'memory://tansu/'"])
    assert c.broker_command == ("tansu", "broker", "--storage-engine", "memory://tansu/")
    env = {"SHOAL_VERIFY_BROKER_COMMAND": "a b", "SHOAL_VERIFY_BOOTSTRAP": "h:1"}
    assert _config([], env).broker_command == ("a", "b")
    assert _config(["--broker-command", "c"], env).broker_command == ("c",)  # the flag wins


@pytest.mark.parametrize("raw", ["", "   ", "tansu 'unclosed"])
def test_an_empty_or_unparsable_command_is_refused(raw: str) -> None:
    with pytest.raises(SystemExit):
        _config(["--broker-command", raw])
    with pytest.raises(SystemExit, match="SHOAL_VERIFY_BROKER_COMMAND"):
        _config([], {"SHOAL_VERIFY_BROKER_COMMAND": raw})


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        ([], "needs --bootstrap"),
        (["--playground", "1"], "not with --playground"),
        (["--bootstrap", "127.0.0.1:1", "--playground", "1"], "not with --playground"),
        (["--bootstrap", "127.0.0.1:1", "--pids", "1"], "--pids"),
        (["--bootstrap", "127.0.0.1:1,127.0.0.1:2"], "one HOST:PORT"),
        (["--bootstrap", "127.0.0.1"], "one HOST:PORT"),
        (["--bootstrap", "127.0.0.1:1", "--faults", "s3-503:1s:1s"], "kill and stop"),
        (["--bootstrap", "127.0.0.1:1", "--faults", "pg-restart:1s"], "kill and stop"),
        (["--bootstrap", "127.0.0.1:1", "--faults", "kill@1:1s"], "no agent 1"),
        (["--bootstrap", "127.0.0.1:1", "--metadata", "postgres"], "--playground only"),
        (["--bootstrap", "127.0.0.1:1", "--duration-s", "5", "--faults", "kill:4s:2s"],
         "does not end"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_before_starting_the_broker(
    argv: list[str], why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "started"
    command = f"{sys.executable} -c 'open({str(marker)!r}, \"w\")'"
    report = tmp_path / "r"
    assert main(["verify", "--report", str(report), "--broker-command", command, *argv]) == 2
    assert why in capsys.readouterr().err
    assert not report.exists() and not marker.exists()


def test_split_host_port() -> None:
    assert split_host_port("127.0.0.1:9092") == ("127.0.0.1", 9092)
    assert split_host_port("[::1]:9092") == ("::1", 9092)
    for bad in ("h", "h:", ":1", "h:x", "h:0", "h:70000", "a:1,b:2"):
        with pytest.raises(ValueError):
            split_host_port(bad)


def test_kill_takes_the_process_group_and_restart_listens_again(tmp_path: Path) -> None:
    port = free_port()
    child_pid = tmp_path / "child.pid"
    command = (sys.executable, "-c", _LISTENER, str(port), str(child_pid))
    target = CommandTarget(command, f"127.0.0.1:{port}", tmp_path / "broker.log").start()
    try:
        assert target.proc is not None
        first = target.proc.pid
        deadline = time.monotonic() + 10
        while not child_pid.exists() or not child_pid.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = int(child_pid.read_text())
        child_pid.unlink()
        target.kill(0)
        assert target.proc.returncode == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while _alive(child):  # SIGKILLed with its parent (reaped by init)
            assert time.monotonic() < deadline, "the broker's child outlived the kill"
            time.sleep(0.05)
        target.restart(0)
        assert target.proc.pid != first
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        target.signal(0, signal.SIGSTOP)
        target.signal(0, signal.SIGCONT)
        assert target.agent_exits() == []  # the kill was planned
        assert target.describe()["broker_starts"] == 2
    finally:
        target.stop()
    assert target.proc.poll() is not None
    log = (tmp_path / "broker.log").read_text()
    assert "--- start 1:" in log and "--- start 2:" in log


def test_an_unplanned_exit_is_reported(tmp_path: Path) -> None:
    port = free_port()
    command = (sys.executable, "-c", _LISTENER, str(port))
    target = CommandTarget(command, f"127.0.0.1:{port}", tmp_path / "broker.log").start()
    assert target.proc is not None
    os.kill(target.proc.pid, signal.SIGTERM)  # not by a fault
    target.proc.wait(10)
    assert target.agent_exits() == [f"broker (start 1): exit {-signal.SIGTERM}"]
    target.stop()
    assert len(target.agent_exits()) == 1


def test_a_broker_that_exits_or_a_busy_port_does_not_start(tmp_path: Path) -> None:
    port = free_port()
    dies = (sys.executable, "-c", "raise SystemExit(4)")
    with pytest.raises(RuntimeError, match="exited with 4 before listening"):
        CommandTarget(dies, f"127.0.0.1:{port}", tmp_path / "broker.log").start()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        never = (sys.executable, "-c", "raise SystemExit(0)")
        target = CommandTarget(never, f"127.0.0.1:{port}", tmp_path / "broker.log")
        with pytest.raises(RuntimeError, match="already listens"):
            target.start()
        assert target.proc is None  # nothing was run
