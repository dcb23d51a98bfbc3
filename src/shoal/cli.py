"""Command line: `shoal agent`, `shoal playground`, `shoal groups`, `shoal verify`.

The only module that reads argv and the environment. Every agent flag `--some-flag` also reads
`SHOAL_SOME_FLAG`, every verify flag `SHOAL_VERIFY_SOME_FLAG`; a flag given on the command line
wins over the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal import __version__
from shoal.settings import Settings
from shoal.tools import groups_cli
from shoal.verify.run import VerifyConfig
from shoal.verify.run import run as verify_run
from shoal.verify.target import METADATA_STORES, OBJECT_STORES


@dataclass(frozen=True)
class _Opt:
    flag: str
    field: str
    kind: Callable[[str], Any]
    help: str
    prefix: str = "SHOAL_"

    @property
    def env(self) -> str:
        return self.prefix + self.flag.lstrip("-").replace("-", "_").upper()


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {raw!r}")


def _roles(raw: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in raw.split(",") if r.strip())


AGENT_OPTIONS: tuple[_Opt, ...] = (
    _Opt("--kafka-host", "kafka_host", str, "address the Kafka listener binds"),
    _Opt("--kafka-port", "kafka_port", int, "Kafka listener port"),
    _Opt("--advertised-host", "advertised_host", str, "host name given to clients"),
    _Opt("--http-host", "http_host", str, "address the HTTP port binds"),
    _Opt("--http-port", "http_port", int, "HTTP port (metrics, status)"),
    _Opt("--data-dir", "data_dir", str, "embedded stores live here"),
    _Opt("--bucket", "bucket", str, "object store URL: file:///dir, memory://, s3://..."),
    _Opt("--metadata", "metadata", str, "metadata store URL: sqlite:///path.db"),
    _Opt("--az", "az", str, "availability zone of this agent"),
    _Opt("--agent-group", "agent_group", str, "agent group"),
    _Opt("--roles", "roles", _roles, "comma-separated roles: proxy,jobs"),
    _Opt("--node-id", "node_id", int, "broker id shown to clients"),
    _Opt(
        "--flush-interval-ms",
        "flush_interval_ms",
        int,
        "seal a segment at most this long after its first byte, at most once per interval"
        " (default 2 for file:// and memory://, 100 for remote stores)",
    ),
    _Opt("--flush-bytes-max", "flush_bytes_max", int, "seal a segment at this size"),
    _Opt("--uploads-in-flight-max", "uploads_in_flight_max", int, "segment uploads at once"),
    _Opt(
        "--write-buffer-bytes-max",
        "write_buffer_bytes_max",
        int,
        "uncommitted produce bytes before producers wait",
    ),
    _Opt("--block-bytes", "block_bytes", int, "read block size"),
    _Opt("--cache-bytes-max", "cache_bytes_max", int, "block cache budget"),
    _Opt("--frame-bytes-max", "frame_bytes_max", int, "largest request frame accepted"),
    _Opt(
        "--requests-bytes-max",
        "requests_bytes_max",
        int,
        "request bytes all connections may hold at once",
    ),
    _Opt(
        "--small-frame-bytes-max",
        "small_frame_bytes_max",
        int,
        "frames up to this size use the small-request reserve",
    ),
    _Opt(
        "--small-requests-bytes-max",
        "small_requests_bytes_max",
        int,
        "the reserve of request bytes for small frames",
    ),
    _Opt(
        "--responses-bytes-max",
        "responses_bytes_max",
        int,
        "what Fetch responses of all connections load and hold until written, in whole blocks",
    ),
    _Opt("--connections-max", "connections_max", int, "open client connections in all"),
    _Opt(
        "--connections-per-ip-max",
        "connections_per_ip_max",
        int,
        "open client connections from one IP address",
    ),
    _Opt(
        "--connection-idle-ms",
        "connection_idle_ms",
        int,
        "close a connection that sends no request for this long",
    ),
    _Opt(
        "--frame-body-timeout-ms",
        "frame_body_timeout_ms",
        int,
        "time for a frame body (each 4 MiB of it) to arrive",
    ),
    _Opt(
        "--response-write-timeout-ms",
        "response_write_timeout_ms",
        int,
        "time for a client to take a response before it is disconnected",
    ),
    _Opt("--fetch-bytes-max", "fetch_bytes_max", int, "largest Fetch response"),
    _Opt(
        "--connection-inflight-max",
        "connection_inflight_max",
        int,
        "pipelined requests per connection",
    ),
    _Opt(
        "--message-bytes-max", "message_bytes_max", int, "largest record batch (max.message.bytes)"
    ),
    _Opt(
        "--auto-create-topics",
        "auto_create_topics",
        _bool,
        "create unknown topics on use (true/false)",
    ),
    _Opt("--default-partitions", "default_partitions", int, "partitions of auto-created topics"),
    _Opt(
        "--group-initial-rebalance-delay-ms",
        "group_initial_rebalance_delay_ms",
        int,
        "wait for more members before a new group's first generation",
    ),
    _Opt(
        "--group-min-session-timeout-ms",
        "group_min_session_timeout_ms",
        int,
        "smallest session timeout a member may ask for",
    ),
    _Opt(
        "--group-max-session-timeout-ms",
        "group_max_session_timeout_ms",
        int,
        "largest session timeout a member may ask for",
    ),
    _Opt("--group-max-size", "group_max_size", int, "members per group"),
    _Opt(
        "--hwm-poll-interval-ms",
        "hwm_poll_interval_ms",
        int,
        "how often waiting fetches look for other agents' commits",
    ),
    _Opt(
        "--object-store-timeout-ms",
        "object_store_timeout_ms",
        int,
        "timeout of one object-store request",
    ),
    _Opt(
        "--peer-timeout-ms",
        "peer_timeout_ms",
        int,
        "timeout of one block read from another agent (then read from the object store)",
    ),
    _Opt("--gc-interval-ms", "gc_interval_ms", int, "garbage-collection cycle interval"),
    _Opt(
        "--log-retention-ms",
        "log_retention_ms",
        int,
        "retention.ms of topics without their own (-1: keep forever)",
    ),
    _Opt(
        "--log-retention-bytes",
        "log_retention_bytes",
        int,
        "retention.bytes per partition of topics without their own (-1: no limit)",
    ),
    _Opt(
        "--retention-check-interval-ms",
        "retention_check_interval_ms",
        int,
        "how often jobs-role agents apply retention",
    ),
    _Opt(
        "--compaction-interval-ms",
        "compaction_interval_ms",
        int,
        "how often the jobs agent merges small segment files (0: never)",
    ),
    _Opt(
        "--compaction-file-bytes-target",
        "compaction_file_bytes_target",
        int,
        "size of the files compaction writes (bytes)",
    ),
    _Opt(
        "--producer-id-expiration-ms",
        "producer_id_expiration_ms",
        int,
        "idempotence state of a producer idle this long is forgotten (jobs role)",
    ),
    _Opt(
        "--producer-id-expiration-check-interval-ms",
        "producer_id_expiration_check_interval_ms",
        int,
        "how often jobs-role agents expire producer state",
    ),
    _Opt(
        "--offsets-retention-minutes",
        "offsets_retention_minutes",
        int,
        "committed offsets of a group empty this long are deleted (jobs role)",
    ),
    _Opt(
        "--offsets-retention-check-interval-ms",
        "offsets_retention_check_interval_ms",
        int,
        "how often jobs-role agents expire committed offsets",
    ),
    _Opt("--gc-grace-ms", "gc_grace_ms", int, "age before an unused segment file is deleted"),
    _Opt(
        "--gc-files-per-cycle-max",
        "gc_files_per_cycle_max",
        int,
        "segment files deleted per garbage-collection cycle",
    ),
    _Opt(
        "--crash-point",
        "crash_point",
        str,
        "tests only: exit at after_put or after_commit (POINT@N: the N-th time)",
    ),
    _Opt(
        "--heartbeat-interval-ms",
        "heartbeat_interval_ms",
        int,
        "how often this agent heartbeats and re-reads the live agents",
    ),
    _Opt(
        "--heartbeat-timeout-ms",
        "heartbeat_timeout_ms",
        int,
        "an agent whose last heartbeat is older than this is gone",
    ),
)


def _pids(raw: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in raw.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of process ids: {raw!r}") from None


def _command(raw: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(raw))
    except ValueError as exc:  # an unclosed quote
        raise argparse.ArgumentTypeError(f"not a command line: {raw!r}: {exc}") from None
    if not argv:
        raise argparse.ArgumentTypeError("an empty command")
    return argv


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise argparse.ArgumentTypeError(f"{raw!r}: one of {', '.join(choices)}")
        return raw

    return parse


_V = "SHOAL_VERIFY_"
VERIFY_OPTIONS: tuple[_Opt, ...] = (
    _Opt("--bootstrap", "bootstrap", str, "bootstrap servers of the cluster to verify", _V),
    _Opt("--partitions", "partitions", int, "partitions of the verify topic", _V),
    _Opt("--duration-s", "duration_s", float, "seconds of producing", _V),
    _Opt("--producers", "producers", int, "idempotent producers", _V),
    _Opt("--consumers", "consumers", int, "assign-mode consumers reading everything", _V),
    _Opt("--rate", "rate_per_producer", float, "values per second per producer", _V),
    _Opt("--faults", "faults", str, "fault schedule, e.g. kill:30s,stop:60s:10s", _V),
    _Opt("--report", "report_dir", Path, "directory for verdict.json and timeline.csv/png", _V),
    _Opt("--json", "json", _bool, "print the verdict as JSON instead of a table", _V),
    _Opt("--topic", "topic", str, "topic to create (default shoal-verify-<unix time>)", _V),
    _Opt("--pids", "pids", _pids, "comma-separated agent PIDs for kill/stop faults", _V),
    _Opt("--playground", "playground", int, "start a local playground of N agents", _V),
    _Opt("--object-store", "object_store", _choice(OBJECT_STORES),
         f"playground object store: {', '.join(OBJECT_STORES)}", _V),
    _Opt("--metadata", "metadata", _choice(METADATA_STORES),
         f"playground metadata store: {', '.join(METADATA_STORES)}", _V),
    _Opt("--agent-args", "agent_args", lambda raw: tuple(shlex.split(raw)),
         "extra `shoal agent` flags for playground agents, e.g. '--heartbeat-timeout-ms 3000'",
         _V),
    _Opt("--message-timeout-ms", "message_timeout_ms", int,
         "producers' delivery timeout; then a value counts as an error", _V),
    _Opt("--broker-command", "broker_command", _command,
         "start this broker (listening at --bootstrap) and, for kill faults, SIGKILL its process"
         " group and start it again, e.g. 'tansu broker --storage-engine memory://tansu/ ...'",
         _V),
)  # fmt: skip


def _add_verify_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "verify",
        help="check a Kafka-compatible cluster for lost, duplicated or reordered records",
        description="Jepsen-style queue checker: idempotent producers and assign-mode consumers"
        " against --bootstrap (or a --playground this command starts, with --faults), then a"
        " final read of everything; exit 1 if any violation. See docs/verify.md.",
    )
    defaults = VerifyConfig(bootstrap=None)
    for opt in VERIFY_OPTIONS:
        default = getattr(defaults, opt.field)
        suffix = f"; default {default}" if default not in (None, "", (), 0) else ""
        if opt.field == "json":
            parser.add_argument(
                opt.flag, dest=opt.field, action="store_const", const=True, default=None,
                help=f"{opt.help} [env {opt.env}]",
            )  # fmt: skip
            continue
        parser.add_argument(
            opt.flag, dest=opt.field, type=opt.kind, default=None,
            help=f"{opt.help} [env {opt.env}{suffix}]",
        )  # fmt: skip
    parser.add_argument(
        "--log-level", default=None, help="debug, info, warning [env SHOAL_LOG_LEVEL]"
    )


def _given(
    options: tuple[_Opt, ...], args: argparse.Namespace, env: Mapping[str, str]
) -> dict[str, Any]:
    """The values of `options` given as flags, else as environment variables."""
    values: dict[str, Any] = {}
    for opt in options:
        flag_value = getattr(args, opt.field, None)
        if flag_value is not None:
            values[opt.field] = flag_value
        elif opt.env in env:
            try:
                values[opt.field] = opt.kind(env[opt.env])
            except (ValueError, argparse.ArgumentTypeError) as exc:
                raise SystemExit(f"shoal: bad value in {opt.env}: {exc}") from None
    return values


def verify_config_from(args: argparse.Namespace, env: Mapping[str, str]) -> VerifyConfig:
    """Flags win over SHOAL_VERIFY_* variables, which win over VerifyConfig's defaults."""
    values = _given(VERIFY_OPTIONS, args, env)
    values.setdefault("bootstrap", None)
    return VerifyConfig(**values)


def _add_agent_options(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    for opt in AGENT_OPTIONS:
        default = getattr(defaults, opt.field)
        shown = ",".join(default) if isinstance(default, tuple) else default
        suffix = f"; default {shown}" if default is not None else ""
        parser.add_argument(
            opt.flag,
            dest=opt.field,
            type=opt.kind,
            default=None,
            help=f"{opt.help} [env {opt.env}{suffix}]",
        )
    parser.add_argument(
        "--log-level", default=None, help="debug, info, warning [env SHOAL_LOG_LEVEL]"
    )


def settings_from(
    args: argparse.Namespace, env: Mapping[str, str], base: Settings | None = None
) -> Settings:
    """Flags win over SHOAL_* variables, which win over `base` (the defaults)."""
    values = _given(AGENT_OPTIONS, args, env)
    try:
        return dataclasses.replace(base or Settings(), **values)
    except ValueError as exc:
        raise SystemExit(f"shoal: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal", description="Kafka-compatible streaming on object storage"
    )
    parser.add_argument("--version", action="version", version=f"shoal {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    agent = sub.add_parser("agent", help="run one agent")
    _add_agent_options(agent)
    playground = sub.add_parser(
        "playground", help="run one agent, or a local cluster of several, with a banner"
    )
    _add_agent_options(playground)
    playground.add_argument(
        "--agents", type=int, default=None, help="agent processes [env SHOAL_AGENTS; default 1]"
    )
    playground.add_argument(
        "--zones", type=int, default=None, help="zones, round-robin [env SHOAL_ZONES; default 1]"
    )
    groups_cli.add_parser(sub)
    _add_verify_parser(sub)
    return parser


def _banner(s: Settings) -> str:
    boot = f"{s.advertised}:{s.kafka_port}"
    return "\n".join(
        [
            "",
            f"  Shoal {__version__} playground is running",
            "",
            f"    Kafka bootstrap   {boot}",
            f"    Metrics / status  http://{s.http_host}:{s.http_port}/metrics  /v1/status",
            f"    Object store      {s.bucket_url}",
            f"    Flush interval    {s.flush_interval_effective_ms} ms",
            f"    Metadata store    {s.metadata_url}",
            "",
            f"    kcat -L -b {boot}",
            f"    kcat -P -b {boot} -t hello      (type lines, Ctrl-D)",
            f"    kcat -C -b {boot} -t hello -e",
            "",
            "  Ctrl-C stops the agent (buffered data is flushed first).",
            "",
        ]
    )


def _install_loop_policy() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(settings: Settings, banner: str | None) -> None:
    from shoal.agent import Agent

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    agent = Agent(settings)
    await agent.start()
    if banner:
        print(banner, flush=True)
    try:
        await stop.wait()
    finally:
        logging.getLogger("shoal").info("shutting down: flushing buffered produce data")
        await agent.stop()


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, default))
    except ValueError:
        raise SystemExit(f"shoal: bad value in {name}: {env[name]!r}") from None


# Set per child by the playground supervisor; every other agent flag is forwarded as given.
_PER_CHILD_FIELDS = frozenset(
    {"kafka_port", "http_port", "node_id", "az", "data_dir", "bucket", "metadata"}
)


def _playground_cluster(args: argparse.Namespace, settings: Settings, agents: int) -> int:
    from pathlib import Path

    from shoal import playground

    forwarded: list[str] = []
    for opt in AGENT_OPTIONS:
        value = getattr(args, opt.field, None)
        if value is None or opt.field in _PER_CHILD_FIELDS:
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        forwarded += [opt.flag, str(value)]
    if args.log_level:
        forwarded += ["--log-level", args.log_level]
    zones = args.zones or _env_int(os.environ, "SHOAL_ZONES", 1)
    config = playground.PlaygroundConfig(
        agents=agents,
        zones=zones,
        kafka_port_base=settings.kafka_port,
        http_port_base=settings.http_port,
        kafka_host=settings.kafka_host,
        advertised_host=settings.advertised,
        http_host=settings.http_host,
        data_dir=Path(settings.data_dir).resolve(),
        bucket_url=settings.bucket_url,
        metadata_url=settings.metadata_url,
        flush_interval_ms=settings.flush_interval_effective_ms,
        forwarded=tuple(forwarded),
    )
    try:
        return playground.run(config)
    except ValueError as exc:
        print(f"shoal playground: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = os.environ
    if args.command == "groups":
        return groups_cli.run(args, env)
    level = (args.log_level or env.get("SHOAL_LOG_LEVEL") or "info").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "verify":
        return verify_run(verify_config_from(args, env))
    settings = settings_from(args, env)
    if args.data_dir is None and "SHOAL_DATA_DIR" not in env:
        settings = dataclasses.replace(settings, data_dir=os.path.abspath(settings.data_dir))
    os.makedirs(settings.data_dir, exist_ok=True)
    if args.command == "playground":
        agents = args.agents or _env_int(env, "SHOAL_AGENTS", 1)
        if agents > 1:
            return _playground_cluster(args, settings, agents)
    _install_loop_policy()
    banner = _banner(settings) if args.command == "playground" else None
    try:
        asyncio.run(_serve(settings, banner))
    except OSError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
