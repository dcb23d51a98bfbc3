"""Apache Kafka from Maven Central: its broker as a peer and its command-line tools as clients.

`compat/kafka/pom.xml` names the artifacts (the broker `kafka_2.13`, `kafka-tools`, a log4j
binding); Maven resolves them into the repo's ignored `.cache/m2` once, and the classpath is
kept in `.cache/kafka-dist/` keyed by the pom's hash. Nothing is downloaded from outside Maven
Central. Used by tests (Kafka's tools against Shoal, Kafka as the reference broker) and by
`bench/` (Kafka beside Shoal and Tansu).

    python -m tests.kafka_dist classpath          # resolve, print the classpath
    python -m tests.kafka_dist broker [DIR]       # start a KRaft broker, print its bootstrap
    python -m tests.kafka_dist tool kafka-topics --bootstrap-server HOST:PORT --list
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoal.common.ports import free_ports

REPO = Path(__file__).resolve().parent.parent
DIST = REPO / "compat" / "kafka"
POM = DIST / "pom.xml"
CACHE = REPO / ".cache"
MAVEN_REPO = CACHE / "m2"
RESOLVE_TIMEOUT_S = 900.0
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
TOOL_TIMEOUT_S = 120.0
# Heap of the peer broker: Kafka's own start script uses 1 GiB.
BROKER_HEAP = "-Xmx1g"
TOOL_HEAP = "-Xmx512m"
# A tool runs for seconds: C1 alone compiles what it needs sooner (one kafka-topics --list took
# 2.1 s of CPU instead of 3.4 s). Not for the broker, whose speed is measured.
TOOL_JIT = ("-XX:TieredStopAtLevel=1",)

# The scripts of a Kafka distribution and the classes they run (bin/*.sh of the 4.x release).
TOOLS: dict[str, str] = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-verifiable-producer": "org.apache.kafka.tools.VerifiableProducer",
    "kafka-verifiable-consumer": "org.apache.kafka.tools.VerifiableConsumer",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-broker-api-versions": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-storage": "kafka.tools.StorageTool",
}


class KafkaDistError(RuntimeError):
    """Java, Maven or the artifacts are missing, or the broker did not start; says which."""


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaDistError("java is not on PATH (Java 17 runs Kafka 4.4)")
    return java


def classpath() -> str:
    """The jars of the broker and the tools, resolving them with Maven the first time."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    out = CACHE / "kafka-dist" / f"classpath-{digest}.txt"
    if out.exists():
        return out.read_text().strip()
    out.parent.mkdir(parents=True, exist_ok=True)
    # Tests of several processes may ask at once: one resolves, the others wait for it.
    with (out.parent / "resolve.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.exists():
            _resolve(out)
    return out.read_text().strip()


def _resolve(out: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaDistError("mvn is not on PATH (Maven resolves Kafka's jars)")
    tmp = out.with_suffix(".tmp")
    argv = [
        mvn, "-q", "-B", "-f", str(POM), f"-Dmaven.repo.local={MAVEN_REPO}",
        "dependency:build-classpath", f"-Dmdep.outputFile={tmp}",
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, timeout=RESOLVE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KafkaDistError(f"Maven did not resolve {POM} in {RESOLVE_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0 or not tmp.exists():
        tail = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
        raise KafkaDistError(f"Maven failed to resolve {POM}:\n{tail}")
    tmp.replace(out)


def java_argv(
    main_class: str, args: Sequence[str], *, heap: str, log_config: str, jit: Sequence[str] = ()
) -> list[str]:
    return [
        _java(), heap, *jit, "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={DIST / log_config}",
        "-cp", classpath(), main_class, *args,
    ]  # fmt: skip


def tool(
    name: str,
    *args: str,
    timeout_s: float = TOOL_TIMEOUT_S,
    input_text: str | None = None,
    measured: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run one of Kafka's command-line tools (a name of `TOOLS`) to completion; its output is
    text, its logging goes to stderr at WARN. Does not check the exit status. `measured` (a
    perf tool as a benchmark's client) keeps the JVM's full JIT."""
    argv = java_argv(
        TOOLS[name], args, heap=TOOL_HEAP, log_config="log4j2-tools.properties",
        jit=() if measured else TOOL_JIT,
    )  # fmt: skip
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, input=input_text, check=False
    )


def tool_process(name: str, *args: str, log: Path) -> subprocess.Popen[str]:
    """Start a long-running tool (a console consumer, a verifiable producer): stdout is a pipe
    of text lines, stderr goes to `log`."""
    argv = java_argv(
        TOOLS[name], args, heap=TOOL_HEAP, log_config="log4j2-tools.properties", jit=TOOL_JIT
    )
    with log.open("w") as err:
        return subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip


# Single-node KRaft settings for a broker that stands in for a cluster of one: replication
# factors of 1 for the internal topics and no initial rebalance delay, as Kafka's own
# `config/server.properties` has for development.
_BROKER_SETTINGS = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={log_dir}
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""


@dataclass
class KafkaBroker:
    """One Apache Kafka broker (KRaft, broker and controller in one JVM) in `workdir`."""

    workdir: Path
    # Broker settings added to (or overriding) the single-node defaults.
    overrides: dict[str, str] = field(default_factory=dict)
    port: int = 0
    controller_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "kafka.log"

    def start(self) -> KafkaBroker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.controller_port = free_ports(2)
        log_dir = self.workdir / "data"
        props = _BROKER_SETTINGS.format(
            port=self.port, controller_port=self.controller_port, log_dir=log_dir
        )
        props += "".join(f"{k}={v}\n" for k, v in self.overrides.items())
        config = self.workdir / "server.properties"
        config.write_text(props)
        shutil.rmtree(log_dir, ignore_errors=True)
        fmt = tool(
            "kafka-storage", "format", "--ignore-formatted", "-t", _cluster_id(), "-c", str(config)
        )
        if fmt.returncode != 0:
            raise KafkaDistError(f"kafka-storage format failed:\n{fmt.stdout}{fmt.stderr}")
        argv = java_argv(
            "kafka.Kafka", [str(config)], heap=BROKER_HEAP, log_config="log4j2-broker.properties"
        )
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, start_new_session=True,
            )  # fmt: skip
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        """Until the broker has registered with its controller and answers on its port: the
        log line Kafka prints when the broker has started."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise KafkaDistError(
                    f"kafka exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if "Kafka Server started" in self.log_text() and _listening(self.port):
                return
            time.sleep(0.2)
        self.stop()
        raise KafkaDistError(f"kafka did not start in {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, base64url without padding (22 characters), never
    starting with '-' (as Kafka's Uuid.randomUuid: kafka-storage would read it as an option;
    one format in 64 failed so)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def running_kafka(
    workdir: Path | None = None, overrides: dict[str, str] | None = None
) -> Iterator[KafkaBroker]:
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kafka-")))
        broker = KafkaBroker(workdir, dict(overrides or {}))
        stack.callback(broker.stop)
        yield broker.start()


def main(argv: list[str]) -> int:
    if argv[:1] == ["classpath"]:
        print(classpath())
        return 0
    if argv[:1] == ["tool"] and len(argv) >= 2:
        done = tool(argv[1], *argv[2:], timeout_s=3600)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return done.returncode
    if argv[:1] == ["broker"]:
        workdir = Path(argv[1]) if len(argv) > 1 else None
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt), running_kafka(workdir) as broker:
            print(broker.bootstrap, flush=True)
            while True:
                time.sleep(3600)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
