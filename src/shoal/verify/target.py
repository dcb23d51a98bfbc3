"""The system a verify run hits, and the faults it can inject there.

- `ExternalTarget`: any bootstrap. With `--pids`, agent processes on this machine can be
  stopped (SIGSTOP/SIGCONT) or killed (SIGKILL; not restarted: the verifier did not start them).
- `CommandTarget`: one broker of any kind that this module starts from a command line
  (`--broker-command`) and reaches at `--bootstrap`. A kill SIGKILLs the command's process group
  and runs the command again; a stop SIGSTOPs the group. Its state lives wherever the command
  keeps it: whether it survives kill -9 is what the run finds out.
- `LocalTarget`: a playground this module starts and owns: N agents (`shoal.playground`'s
  supervisor) on an object store (a local folder, moto or SeaweedFS; S3 stores are reached
  through a fault proxy) and a metadata store (SQLite, or a throwaway PostgreSQL). It can kill
  and restart agents, stop and continue them, make the proxy answer 503 or add latency, and
  restart PostgreSQL.

Faults run on their own threads (they may overlap); each records the window it really took.
Agents are started, first and again, from one long-lived thread of the target: the playground
asks the kernel to SIGTERM a child when the thread that forked it ends (PR_SET_PDEATHSIG is per
thread), so an agent restarted from a fault's short-lived thread would die with it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import random
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shoal import playground
from shoal.verify.fault_proxy import FaultProxy
from shoal.verify.history import FaultWindow
from shoal.verify.pg_server import PgServer
from shoal.verify.s3_server import S3Server, start_moto, start_seaweedfs
from shoal.verify.schedule import AGENT_KINDS, S3_KINDS, Fault

log = logging.getLogger("shoal.verify")

OBJECT_STORES = ("local", "moto", "seaweedfs")
METADATA_STORES = ("sqlite", "postgres")
_LISTEN_TIMEOUT_S = 60.0
_PORT_TRIES = 50


class Target:
    """What faults need of a target; each method blocks until its step is done."""

    bootstrap: str

    def supports(self, kind: str) -> str | None:
        """None if `kind` can be injected, else why not."""
        return f"{kind} faults need --playground"

    def kill(self, agent: int) -> None:
        raise NotImplementedError

    def restart(self, agent: int) -> None:
        raise NotImplementedError

    def signal(self, agent: int, signum: int) -> None:
        raise NotImplementedError

    def s3_faults(self, for_s: float, *, slowdown: bool, delay_ms: int) -> None:
        raise NotImplementedError

    def pg_stop(self) -> None:
        raise NotImplementedError

    def pg_start(self) -> None:
        raise NotImplementedError

    def start(self) -> Target:
        """Bring up what the target owns (nothing for a cluster someone else runs)."""
        return self

    def describe(self) -> dict[str, object]:
        return {"bootstrap": self.bootstrap}

    def agent_exits(self) -> list[str]:
        """Processes of the target that exited by themselves (not by a kill fault)."""
        return []

    def stop(self) -> None:
        """Release what the target started."""


class ExternalTarget(Target):
    def __init__(self, bootstrap: str, pids: tuple[int, ...] = ()) -> None:
        self.bootstrap = bootstrap
        self.pids = pids

    def supports(self, kind: str) -> str | None:
        if kind in AGENT_KINDS and self.pids:
            return None
        if kind in AGENT_KINDS:
            return f"{kind} faults need --pids (or --playground, or --broker-command)"
        return f"{kind} faults need --playground"

    def kill(self, agent: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pids[agent], signal.SIGKILL)

    def restart(self, agent: int) -> None:
        log.warning("agent %d (pid %d) was killed; not restarted (not ours)", agent,
                    self.pids[agent])  # fmt: skip

    def signal(self, agent: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pids[agent], signum)

    def stop(self) -> None:
        for pid in self.pids:  # never leave an agent stopped
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _wait_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _listening(host, port):
            return True
        time.sleep(0.1)
    return False


def split_host_port(bootstrap: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) of a single-address bootstrap; ValueError if not one."""
    host, sep, port = bootstrap.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or "," in bootstrap or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not one HOST:PORT: {bootstrap!r}")
    return host, int(port)


class CommandTarget(Target):
    """One broker process this target starts from `command` and reaches at `bootstrap`; its
    output goes to `log_path`, appended across restarts."""

    def __init__(self, command: tuple[str, ...], bootstrap: str, log_path: Path) -> None:
        if not command:
            raise ValueError("--broker-command is empty")
        self.command = command
        self.bootstrap = bootstrap
        try:
            self.host, self.port = split_host_port(bootstrap)
        except ValueError as exc:
            raise ValueError(f"--broker-command starts one broker: --bootstrap {exc}") from None
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.killed = False  # the running process was killed by a fault (not an unplanned exit)
        self.exits: list[str] = []

    def supports(self, kind: str) -> str | None:
        if kind in AGENT_KINDS:
            return None
        return f"{kind} faults need --playground (a --broker-command broker takes kill and stop)"

    def start(self) -> CommandTarget:
        if _listening(self.host, self.port):
            raise RuntimeError(f"something already listens on {self.bootstrap}; --broker-command"
                               " starts the broker itself")  # fmt: skip
        self._spawn()
        return self

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as out:
            out.write(f"--- start {self.starts}: {shlex.join(self.command)}\n".encode())
            out.flush()
            # Its own process group, so a kill takes any children (a shell wrapper's) with it.
            proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.proc, self.killed = proc, False
        deadline = time.monotonic() + _LISTEN_TIMEOUT_S
        while time.monotonic() < deadline:
            if _wait_port(self.host, self.port, 0.5):
                return
            code = proc.poll()
            if code is not None:
                raise RuntimeError(f"the broker exited with {code} before listening on"
                                   f" {self.bootstrap}; see {self.log_path}")  # fmt: skip
        raise RuntimeError(f"the broker did not listen on {self.bootstrap} within"
                           f" {_LISTEN_TIMEOUT_S:.0f}s; see {self.log_path}")  # fmt: skip

    def _group(self, signum: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)

    def _note_exit(self) -> None:
        """Record the running process's exit if it ended by itself."""
        if self.proc is not None and not self.killed:
            code = self.proc.poll()
            if code is not None:
                self.exits.append(f"broker (start {self.starts}): exit {code}")
                self.killed = True  # recorded once

    def kill(self, agent: int) -> None:
        assert self.proc is not None
        self._note_exit()
        self.killed = True
        self._group(signal.SIGKILL)
        self.proc.wait(30)

    def restart(self, agent: int) -> None:
        self._spawn()

    def signal(self, agent: int, signum: int) -> None:
        self._group(signum)

    def describe(self) -> dict[str, object]:
        return {
            "bootstrap": self.bootstrap,
            "broker_command": shlex.join(self.command),
            "broker_log": str(self.log_path),
            "broker_starts": self.starts,
        }

    def agent_exits(self) -> list[str]:
        self._note_exit()
        return list(self.exits)

    def stop(self) -> None:
        if self.proc is None:
            return
        self._note_exit()
        self.killed = True
        self._group(signal.SIGCONT)  # never leave it stopped
        self._group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._group(signal.SIGKILL)  # what outlived SIGTERM, children included
        self.proc.wait(10)


@dataclass(frozen=True, slots=True)
class LocalSpec:
    agents: int
    object_store: str  # one of OBJECT_STORES
    metadata: str  # one of METADATA_STORES
    work_dir: Path
    agent_args: tuple[str, ...] = ()  # extra `shoal agent` flags for every agent
    host: str = "127.0.0.1"


class LocalTarget(Target):
    def __init__(self, spec: LocalSpec) -> None:
        if spec.object_store not in OBJECT_STORES:
            raise ValueError(f"object store {spec.object_store!r}: one of {OBJECT_STORES}")
        if spec.metadata not in METADATA_STORES:
            raise ValueError(f"metadata store {spec.metadata!r}: one of {METADATA_STORES}")
        if spec.agents < 1:
            raise ValueError("--playground needs at least one agent")
        self.spec = spec
        self.s3: S3Server | None = None
        self.proxy: FaultProxy | None = None
        self.pg: PgServer | None = None
        self.supervisor: playground.Supervisor | None = None
        self.lock = threading.Lock()  # the supervisor has one owner at a time
        # The thread every agent is forked from (see the module docstring).
        self.owner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="agents")
        self.bootstrap = ""
        self.bucket_url = ""
        self.metadata_url = ""

    def supports(self, kind: str) -> str | None:
        if kind in S3_KINDS and self.spec.object_store == "local":
            return f"{kind} faults need an S3 store (--object-store moto or seaweedfs)"
        if kind == "pg-restart" and self.spec.metadata != "postgres":
            return "pg-restart needs --metadata postgres"
        return None

    def start(self) -> LocalTarget:
        spec = self.spec
        data_dir = spec.work_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if spec.object_store == "local":
            self.bucket_url = f"file://{data_dir / 'objects'}"
        else:
            starter = start_moto if spec.object_store == "moto" else start_seaweedfs
            self.s3 = starter(data_dir / spec.object_store)
            self.proxy = FaultProxy(self.s3.endpoint).start()
            self.bucket_url = self.s3.url("verify", endpoint=self.proxy.endpoint)
            env.update(self.s3.env())
        if spec.metadata == "postgres":
            self.pg = PgServer(durable=True).start()
            self.metadata_url = self.pg.url
        else:
            self.metadata_url = f"sqlite:///{data_dir / 'metadata.db'}"
        config, specs = self._plan(data_dir)
        self.supervisor = playground.Supervisor(config, specs, env=env)
        self.owner.submit(self.supervisor.start_all).result()
        self.bootstrap = ",".join(f"{spec.host}:{s.kafka_port}" for s in specs)
        return self

    def _plan(
        self, data_dir: Path
    ) -> tuple[playground.PlaygroundConfig, list[playground.ChildSpec]]:
        spec = self.spec
        for _ in range(_PORT_TRIES):
            # Below the ephemeral range, so no client socket takes a port between check and bind.
            kafka = random.randrange(20_000, 32_000, 100)
            config = playground.PlaygroundConfig(
                agents=spec.agents, zones=1, kafka_port_base=kafka, http_port_base=kafka + 50,
                kafka_host=spec.host, advertised_host=spec.host, http_host=spec.host,
                data_dir=data_dir, bucket_url=self.bucket_url, metadata_url=self.metadata_url,
                flush_interval_ms=0, forwarded=spec.agent_args,
            )  # fmt: skip
            specs = playground.plan(config)
            if not playground.busy_ports(specs, spec.host, spec.host):
                return config, specs
        raise RuntimeError("no free ports for the playground")

    def describe(self) -> dict[str, object]:
        return {
            "bootstrap": self.bootstrap,
            "agents": self.spec.agents,
            "object_store": self.spec.object_store,
            "metadata": self.spec.metadata,
            "bucket": self.bucket_url,
            "metadata_url": self.metadata_url,
            "agent_logs": str(self.spec.work_dir.resolve() / "logs"),
        }

    def _child(self, agent: int) -> playground.ChildSpec:
        assert self.supervisor is not None
        return self.supervisor.specs[agent]

    def kill(self, agent: int) -> None:
        assert self.supervisor is not None
        with self.lock:
            proc = self.supervisor.procs[agent]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)  # a stopped agent dies as well
            proc.kill()
        proc.wait(30)

    def restart(self, agent: int) -> None:
        assert self.supervisor is not None
        child = self._child(agent)
        with self.lock:
            self.owner.submit(self.supervisor.start, [child]).result()
        if not _wait_port(self.spec.host, child.kafka_port, _LISTEN_TIMEOUT_S):
            log.warning("agent %d did not listen again within %.0fs", agent, _LISTEN_TIMEOUT_S)

    def signal(self, agent: int, signum: int) -> None:
        assert self.supervisor is not None
        with self.lock:
            proc = self.supervisor.procs[agent]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    def s3_faults(self, for_s: float, *, slowdown: bool, delay_ms: int) -> None:
        assert self.proxy is not None
        if slowdown:
            self.proxy.set(slowdown_ratio=1.0, for_s=for_s)
        else:
            self.proxy.set(delay_ms=delay_ms, for_s=for_s)

    def pg_stop(self) -> None:
        assert self.pg is not None
        self.pg.stop("immediate")

    def pg_start(self) -> None:
        assert self.pg is not None
        self.pg.start()

    def agent_exits(self) -> list[str]:
        """Agents that exited by themselves (not by a kill fault), for the report."""
        if self.supervisor is None:
            return []
        return [f"agent {s.index}: exit {code}" for s, code in self.supervisor.dead()]

    def stop(self) -> None:
        if self.supervisor is not None:
            for proc in self.supervisor.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
            self.supervisor.stop()
        self.owner.shutdown(wait=False)
        if self.proxy is not None:
            self.proxy.stop()
        if self.s3 is not None:
            self.s3.stop()
        if self.pg is not None:
            self.pg.destroy()


class FaultRunner:
    """Carries out a schedule against a target, one thread per fault, times from `now()`."""

    def __init__(self, target: Target, faults: list[Fault], now: Callable[[], float]) -> None:
        self.target = target
        self.faults = faults
        self.now = now
        self.windows: list[FaultWindow] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(f,), name=f"fault-{f.kind}", daemon=True)
            for f in faults
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _sleep_until(self, at_s: float) -> None:
        wait = at_s - self.now()
        if wait > 0:
            time.sleep(wait)

    def _run(self, f: Fault) -> None:
        self._sleep_until(f.at_s)
        start = self.now()
        target = "s3" if f.kind in S3_KINDS else "postgres" if f.kind == "pg-restart" else ""
        try:
            if f.kind == "kill":
                assert f.agent is not None
                target = f"agent {f.agent}"
                self.target.kill(f.agent)
                time.sleep(f.for_s)
                self.target.restart(f.agent)
            elif f.kind == "stop":
                assert f.agent is not None
                target = f"agent {f.agent}"
                self.target.signal(f.agent, signal.SIGSTOP)
                time.sleep(f.for_s)
                self.target.signal(f.agent, signal.SIGCONT)
            elif f.kind in S3_KINDS:
                self.target.s3_faults(f.for_s, slowdown=f.kind == "s3-503", delay_ms=f.delay_ms)
                time.sleep(f.for_s)
            elif f.kind == "pg-restart":
                self.target.pg_stop()
                time.sleep(f.for_s)
                self.target.pg_start()
            log.info("fault %s done", f.describe())
        except Exception as exc:  # reported; the run goes on
            log.exception("fault %s failed", f.describe())
            with self._lock:
                self.failures.append(f"{f.describe()}: {exc}")
        finally:
            with self._lock:
                self.windows.append(FaultWindow(f.kind, target, start, self.now()))
