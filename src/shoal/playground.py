"""`shoal playground --agents N --zones Z`: a local multi-agent cluster under one supervisor.

N `shoal agent` child processes share one data dir (one SQLite metadata file and one
local-folder object store). Agent i listens on Kafka port BASE+i and HTTP port BASE+i, has
node id i and zone `zone-(i mod Z + 1)`. Every other agent flag is forwarded to every child.

Children run in their own process group, so a Ctrl-C in the terminal reaches the supervisor
only; it then stops them in order (SIGTERM, so each flushes its buffered produce data; SIGKILL
after a timeout). On Linux each child also asks the kernel for SIGTERM when the supervisor
dies (PR_SET_PDEATHSIG), so even a `kill -9` of the supervisor leaves no orphan.

A child that dies on its own is reported (exit code and the tail of its log) and the others keep
running: a playground is where one tries failures, e.g. `kill -9` of one agent to watch the
rings shrink and clients move on. The supervisor exits when every child has died.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from shoal import __version__

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.2
LOG_TAIL_LINES = 20
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One agent of the playground and the command line that starts it."""

    index: int
    zone: str
    kafka_port: int
    http_port: int
    log_path: Path
    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlaygroundConfig:
    agents: int
    zones: int
    kafka_port_base: int
    http_port_base: int
    kafka_host: str
    advertised_host: str
    http_host: str
    data_dir: Path
    bucket_url: str
    metadata_url: str
    flush_interval_ms: int
    # Agent flags given to the playground, passed on unchanged to every child.
    forwarded: tuple[str, ...] = ()


def zone_name(index: int, zones: int) -> str:
    return f"zone-{index % zones + 1}"


def plan(config: PlaygroundConfig, python: str = sys.executable) -> list[ChildSpec]:
    if config.agents < 1:
        raise ValueError("--agents must be at least 1")
    if not 1 <= config.zones <= config.agents:
        raise ValueError("--zones must be between 1 and --agents")
    logs = config.data_dir / "logs"
    specs: list[ChildSpec] = []
    for i in range(config.agents):
        zone = zone_name(i, config.zones)
        kafka_port = config.kafka_port_base + i
        http_port = config.http_port_base + i
        argv = (
            python,
            "-m",
            "shoal.cli",
            "agent",
            *config.forwarded,
            # After the forwarded flags, so that the per-agent values win if a flag repeats.
            "--data-dir",
            str(config.data_dir),
            "--bucket",
            config.bucket_url,
            "--metadata",
            config.metadata_url,
            "--kafka-port",
            str(kafka_port),
            "--http-port",
            str(http_port),
            "--node-id",
            str(i),
            "--az",
            zone,
        )
        specs.append(ChildSpec(i, zone, kafka_port, http_port, logs / f"agent-{i}.log", argv))
    return specs


def bootstraps_by_zone(specs: Sequence[ChildSpec], host: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for spec in specs:
        out.setdefault(spec.zone, []).append(f"{host}:{spec.kafka_port}")
    return {zone: ",".join(addrs) for zone, addrs in out.items()}


def banner(config: PlaygroundConfig, specs: Sequence[ChildSpec]) -> str:
    host = config.advertised_host
    zones = bootstraps_by_zone(specs, host)
    every = ",".join(f"{host}:{s.kafka_port}" for s in specs)
    width = max(len(b) for b in zones.values())
    lines = [
        "",
        f"  Shoal {__version__} playground: {config.agents} agents in {config.zones} zones",
        "",
        f"    Data dir          {config.data_dir}",
        f"    Object store      {config.bucket_url}",
        f"    Metadata store    {config.metadata_url}",
        f"    Flush interval    {config.flush_interval_ms} ms",
        "",
        f"    {'zone':<8}  {'bootstrap.servers':<{width}}  client.id",
    ]
    for zone, boot in zones.items():
        lines.append(f"    {zone:<8}  {boot:<{width}}  shoal_az={zone}")
    lines += [
        "    A client naming no zone, or a zone without agents, is served by all agents:",
        f"    {every}",
    ]
    lines += ["", f"    {'agent':<6} {'zone':<8} {'kafka':<21} metrics / status"]
    for s in specs:
        kafka = f"{host}:{s.kafka_port}"
        http = f"http://{config.http_host}:{s.http_port}"
        lines.append(f"    {s.index:<6} {s.zone:<8} {kafka:<21} {http}/metrics  /v1/status")
    first_zone, first_boot = next(iter(zones.items()))
    last_zone, last_boot = list(zones.items())[-1]
    lines += [
        "",
        "    Clients name their zone in client.id (comma-separated key=value pairs), e.g.",
        f"    kcat -L -b {first_boot} -X client.id=shoal_az={first_zone}",
        f"    kcat -P -b {first_boot} -X client.id=shoal_az={first_zone} -t hello",
        f"    kcat -C -b {last_boot} -X client.id=shoal_az={last_zone} -t hello -e",
        "",
        f"    Agent logs: {config.data_dir / 'logs'}/agent-<i>.log",
        "  Ctrl-C stops all agents (each flushes its buffered data first).",
        "",
    ]
    return "\n".join(lines)


def _child_setup(parent_pid: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: own process group, die with the parent."""

    def setup() -> None:
        os.setpgrp()
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died before prctl took effect.
        if os.getppid() != parent_pid:
            os._exit(1)

    return setup


def _port_open(port: int, host: str) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def busy_ports(specs: Sequence[ChildSpec], kafka_host: str, http_host: str) -> list[int]:
    """Ports already taken. Checked before starting, because a foreign listener on an agent's
    port would otherwise look like that agent listening."""
    busy: list[int] = []
    for host, port in [(kafka_host, s.kafka_port) for s in specs] + [
        (http_host, s.http_port) for s in specs
    ]:
        with socket.socket() as sock:
            # As the agent's listeners do, so that a port in TIME_WAIT counts as free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                busy.append(port)
    return busy


def _connect_host(bind_host: str) -> str:
    return "127.0.0.1" if bind_host in ("0.0.0.0", "", "::") else bind_host


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts the children, watches them, stops them. Not thread-safe: one owner thread."""

    def __init__(
        self,
        config: PlaygroundConfig,
        specs: Sequence[ChildSpec],
        *,
        out: Callable[[str], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.specs = list(specs)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._reported: set[int] = set()
        self._out = out or (lambda text: print(text, file=sys.stderr, flush=True))
        self._env = env

    def start(self, specs: Sequence[ChildSpec] | None = None) -> None:
        """Start `specs` (default: all) without waiting for them."""
        parent = os.getpid()
        for spec in self.specs if specs is None else specs:
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(spec.log_path, "ab") as log:
                self.procs[spec.index] = subprocess.Popen(
                    spec.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._env,
                    preexec_fn=_child_setup(parent),
                )

    def start_all(self, cancelled: Callable[[], bool] = lambda: False) -> None:
        """The first agent alone until it listens (it creates or migrates the metadata
        schema, which agents starting at once on a fresh SQLite file would race for), then
        the others together; returns when all listen."""
        self.start(self.specs[:1])
        self.wait_listening(cancelled=cancelled)
        if not cancelled():
            self.start(self.specs[1:])
            self.wait_listening(cancelled=cancelled)

    def wait_listening(
        self, timeout_s: float = START_TIMEOUT_S, cancelled: Callable[[], bool] = lambda: False
    ) -> None:
        """Until every child's Kafka and HTTP ports accept connections (or `cancelled()`);
        raises if one dies first."""
        kafka_host = _connect_host(self.config.kafka_host)
        http_host = _connect_host(self.config.http_host)
        pending = {spec.index for spec in self.specs if spec.index in self.procs}
        deadline = time.monotonic() + timeout_s
        while pending and not cancelled():
            for spec in self.specs:
                if spec.index not in pending:
                    continue
                code = self.procs[spec.index].poll()
                if code is not None:
                    raise ChildExitedError(spec, code)
                if _port_open(spec.kafka_port, kafka_host) and _port_open(
                    spec.http_port, http_host
                ):
                    pending.discard(spec.index)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"agents {sorted(pending)} did not listen within {timeout_s:.0f}s"
                )
            time.sleep(POLL_INTERVAL_S)

    def dead(self) -> list[tuple[ChildSpec, int]]:
        """Children that exited and were not reported before (reports each one once)."""
        out: list[tuple[ChildSpec, int]] = []
        for spec in self.specs:
            proc = self.procs.get(spec.index)
            code = None if proc is None else proc.poll()
            if code is not None and spec.index not in self._reported:
                self._reported.add(spec.index)
                out.append((spec, code))
        return out

    def alive(self) -> int:
        return sum(1 for p in self.procs.values() if p.poll() is None)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to all at once (they flush in parallel), then SIGKILL after `timeout_s`."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for spec in self.specs:
            child = self.procs.get(spec.index)
            if child is None:
                continue
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._out(f"shoal playground: agent {spec.index} did not stop; killing it")
                child.kill()
                child.wait(10)


class ChildExitedError(RuntimeError):
    def __init__(self, spec: ChildSpec, code: int) -> None:
        super().__init__(f"agent {spec.index} ({spec.zone}) exited with code {code}")
        self.spec = spec
        self.code = code


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def run(config: PlaygroundConfig) -> int:
    """Run the playground until SIGINT/SIGTERM or until every agent has died."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    specs = plan(config)
    busy = busy_ports(specs, config.kafka_host, config.http_host)
    if busy:
        print(
            f"shoal playground: ports already in use: {', '.join(map(str, busy))}"
            " (choose other bases with --kafka-port / --http-port)",
            file=sys.stderr,
        )
        return 1
    supervisor = Supervisor(config, specs)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            supervisor.start_all(cancelled=lambda: stopping)
        except (ChildExitedError, TimeoutError) as exc:
            print(f"shoal playground: {exc}", file=sys.stderr)
            if isinstance(exc, ChildExitedError):
                print(log_tail(exc.spec.log_path), file=sys.stderr)
            return 1
        if stopping:
            return 0
        print(banner(config, specs), flush=True)
        while not stopping:
            for spec, code in supervisor.dead():
                print(
                    f"shoal playground: agent {spec.index} ({spec.zone}, kafka port "
                    f"{spec.kafka_port}) died: {_describe_exit(code)}; the other agents keep "
                    f"running. Last lines of {spec.log_path}:\n{log_tail(spec.log_path)}",
                    file=sys.stderr,
                    flush=True,
                )
            if supervisor.alive() == 0:
                print("shoal playground: every agent has exited", file=sys.stderr)
                return 1
            time.sleep(POLL_INTERVAL_S)
        print("shoal playground: stopping all agents", file=sys.stderr, flush=True)
        return 0
    finally:
        supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
