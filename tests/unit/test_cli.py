from __future__ import annotations

import pytest

from shoal.cli import build_parser, settings_from
from shoal.settings import Settings


def parse(*argv: str, env: dict[str, str] | None = None) -> Settings:
    args = build_parser().parse_args(["agent", *argv])
    return settings_from(args, env or {})


def test_defaults() -> None:
    s = parse()
    assert (s.kafka_host, s.kafka_port, s.http_port) == ("127.0.0.1", 9092, 8080)
    assert s.auto_create_topics is True
    assert s.bucket_url.startswith("file://") and s.bucket_url.endswith("/shoal-data/objects")
    assert s.metadata_url.startswith("sqlite:///")


def test_environment_and_flags_flags_win() -> None:
    env = {"SHOAL_KAFKA_PORT": "1234", "SHOAL_AUTO_CREATE_TOPICS": "false", "SHOAL_AZ": "z1"}
    s = parse(env=env)
    assert (s.kafka_port, s.auto_create_topics, s.az) == (1234, False, "z1")
    s = parse("--kafka-port", "999", "--auto-create-topics", "true", env=env)
    assert (s.kafka_port, s.auto_create_topics, s.az) == (999, True, "z1")


def test_bad_environment_value_is_a_clear_exit() -> None:
    with pytest.raises(SystemExit, match="SHOAL_KAFKA_PORT"):
        parse(env={"SHOAL_KAFKA_PORT": "many"})


def test_gc_grace_has_a_floor_and_gives_writers_half_of_it() -> None:
    """Issue 12 item 4: `--gc-grace-ms 0` was accepted; the GC could then delete a segment
    while its commit was on the way."""
    with pytest.raises(SystemExit, match="gc_grace_ms must be at least 1000"):
        parse("--gc-grace-ms", "0")
    with pytest.raises(SystemExit, match="gc_grace_ms"):
        parse(env={"SHOAL_GC_GRACE_MS": "999"})
    assert parse("--gc-grace-ms", "1000").commit_within_ms == 500
    assert parse().commit_within_ms == Settings().gc_grace_ms // 2


def test_roles_list() -> None:
    assert parse("--roles", "proxy, jobs").roles == ("proxy", "jobs")


def test_flush_interval_default_depends_on_store() -> None:
    assert parse().flush_interval_effective_ms == 2
    assert parse("--bucket", "memory://").flush_interval_effective_ms == 2
    assert parse("--bucket", "s3://b/p").flush_interval_effective_ms == 100
    assert (
        parse("--bucket", "s3://b/p", "--flush-interval-ms", "7").flush_interval_effective_ms == 7
    )
