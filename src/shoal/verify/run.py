"""A whole verify run: target up, topic, workload with faults, history, verdict, report.

Exit codes: 0 no violation, 1 violations found, 2 usage (a bad flag or schedule), 3 the run
could not be carried out (target did not start, the final read failed, ...).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.verify import report, schedule
from shoal.verify.checker import check
from shoal.verify.target import (
    CommandTarget,
    ExternalTarget,
    FaultRunner,
    LocalSpec,
    LocalTarget,
    Target,
)
from shoal.verify.workload import (
    VerifyError,
    Workload,
    WorkloadConfig,
    client_log,
    create_topic,
)

log = logging.getLogger("shoal.verify")

EXIT_OK, EXIT_VIOLATIONS, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
PROGRESS_INTERVAL_S = 10.0


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    bootstrap: str | None  # an existing cluster, or None with `playground`
    partitions: int = 8
    duration_s: float = 60.0
    producers: int = 2
    consumers: int = 2
    rate_per_producer: float = 200.0
    faults: str = ""
    report_dir: Path = Path("shoal-verify-report")
    json: bool = False
    topic: str | None = None
    pids: tuple[int, ...] = ()
    playground: int = 0  # agents of a local playground to start (0: none)
    object_store: str = "local"
    metadata: str = "sqlite"
    agent_args: tuple[str, ...] = ()
    message_timeout_ms: int = 60_000
    broker_command: tuple[str, ...] = ()  # start (and restart after kill) the broker at bootstrap


def _usage(text: str) -> int:
    print(f"shoal verify: {text}", file=sys.stderr)
    return EXIT_USAGE


def _target(config: VerifyConfig) -> Target:
    if config.playground:
        spec = LocalSpec(
            config.playground, config.object_store, config.metadata,
            config.report_dir / "target", config.agent_args,
        )  # fmt: skip
        return LocalTarget(spec)
    assert config.bootstrap is not None
    if config.broker_command:
        log_path = config.report_dir / "target" / "broker.log"
        return CommandTarget(config.broker_command, config.bootstrap, log_path)
    return ExternalTarget(config.bootstrap, config.pids)


def _missing_modules() -> list[str]:
    import importlib.util

    return [m for m in ("confluent_kafka", "rich", "matplotlib")
            if importlib.util.find_spec(m) is None]  # fmt: skip


def run(config: VerifyConfig) -> int:
    missing = _missing_modules()
    if missing:
        return _usage(f"needs {', '.join(missing)}: pip install 'shoal[verify]'")
    if config.broker_command and config.playground:
        return _usage("--broker-command starts the broker at --bootstrap; not with --playground")
    if config.broker_command and not config.bootstrap:
        return _usage("--broker-command needs --bootstrap HOST:PORT, where the broker listens")
    if bool(config.playground) == bool(config.bootstrap):
        return _usage("give either --bootstrap HOST:PORT or --playground N")
    defaults = VerifyConfig(bootstrap=None)
    if not config.playground and (
        config.object_store != defaults.object_store
        or config.metadata != defaults.metadata
        or config.agent_args
    ):
        return _usage("--object-store, --metadata and --agent-args are for --playground only")
    if config.playground and config.pids:
        return _usage("--pids is for --bootstrap (a playground's agents are known)")
    if config.broker_command and config.pids:
        return _usage("--pids is not for --broker-command (the broker it starts is known)")
    if config.partitions < 1 or config.producers < 1 or config.consumers < 0:
        return _usage("--partitions and --producers must be at least 1, --consumers at least 0")
    if config.duration_s <= 0 or config.rate_per_producer <= 0:
        return _usage("--duration-s and --rate must be positive")
    agents = config.playground or len(config.pids) or (1 if config.broker_command else None)
    try:
        faults = schedule.parse(config.faults, agents)
        target = _target(config)
    except ValueError as exc:
        return _usage(str(exc))
    for f in faults:
        why = target.supports(f.kind)
        if why is not None:
            return _usage(why)
        if f.at_s + f.for_s >= config.duration_s:
            return _usage(f"{f.describe()} does not end before --duration-s {config.duration_s:g}")
    try:
        return _run(config, target, faults)
    except VerifyError as exc:
        print(f"shoal verify: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    finally:
        target.stop()


def _client_log(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "clients.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    client_log.addHandler(handler)
    client_log.propagate = False
    client_log.setLevel(logging.INFO)
    return path


def _run(config: VerifyConfig, target: Target, faults: list[schedule.Fault]) -> int:
    _client_log(config.report_dir)
    if isinstance(target, LocalTarget):
        _err(f"starting a playground of {config.playground} agents"
             f" ({config.object_store}, {config.metadata}) under {config.report_dir / 'target'}")
        try:
            target.start()
        except Exception as exc:
            raise VerifyError(f"the playground did not start: {exc}") from exc
    elif isinstance(target, CommandTarget):
        _err(f"starting {shlex.join(target.command)} (log {target.log_path})")
        try:
            target.start()
        except Exception as exc:
            raise VerifyError(f"the broker did not start: {exc}") from exc
    topic = config.topic or f"shoal-verify-{int(time.time())}"
    create_topic(target.bootstrap, topic, config.partitions)
    workload = Workload(
        WorkloadConfig(
            target.bootstrap, topic, config.partitions, config.producers, config.consumers,
            config.duration_s, config.rate_per_producer, config.message_timeout_ms,
        )
    )  # fmt: skip
    runner = FaultRunner(target, faults, workload.now)
    _err(f"verifying {target.bootstrap}, topic {topic}: {config.producers} producers at"
         f" {config.rate_per_producer:g}/s, {config.consumers} consumers, {config.duration_s:g}s;"
         f" faults: {', '.join(f.describe() for f in faults) or 'none'}")  # fmt: skip
    workload.start()
    runner.start()
    done = threading.Event()
    ticker = threading.Thread(target=_progress, args=(workload, done), daemon=True)
    ticker.start()
    try:
        time.sleep(max(0.0, config.duration_s - workload.now()))
        runner.join(timeout_s=120)
        _err("producing done; draining and reading every partition from the start")
        history = workload.finish()
    finally:
        done.set()
    history.faults = sorted(runner.windows, key=lambda w: w.start_s)
    verdict = check(history)
    notes = list(runner.failures)
    notes += [f"partition {p}: the broker said it does not exist at the final read (read as"
              " empty)" for p in sorted(workload.absent)]  # fmt: skip
    notes += [f"unplanned exit: {e}" for e in target.agent_exits() if e]
    run_doc: dict[str, Any] = {
        "title": f"shoal verify: {config.duration_s:g} s, {config.partitions} partitions,"
        f" {config.producers} producers, {len(faults)} faults",
        "target": target.describe(),
        "topic": topic,
        "partitions": config.partitions,
        "duration_s": config.duration_s,
        "producers": config.producers,
        "consumers": config.consumers,
        "rate_per_producer": config.rate_per_producer,
        "faults": config.faults,
        "notes": notes,
    }
    files = report.write_files(config.report_dir, verdict, history, run_doc)
    if config.json:
        doc = {"verdict": verdict.to_json(), "run": run_doc, "files": [str(p) for p in files]}
        print(json.dumps(doc, indent=2))
    else:
        print(f"shoal verify: {target.bootstrap}, topic {topic}")
        report.print_table(verdict, "verdict")
        for note in notes:
            print(f"  note: {note}")
        print(f"  report: {', '.join(str(p) for p in files)}")
    return EXIT_OK if verdict.ok else EXIT_VIOLATIONS


def _err(text: str) -> None:
    print(f"shoal verify: {text}", file=sys.stderr, flush=True)


def _progress(workload: Workload, done: threading.Event) -> None:
    while not done.wait(PROGRESS_INTERVAL_S):
        _err(workload.progress())
