from __future__ import annotations

import socket
from pathlib import Path

import pytest

from shoal import cli, playground
from shoal.playground import PlaygroundConfig, banner, bootstraps_by_zone, busy_ports, plan


def config(tmp_path: Path, agents: int = 6, zones: int = 3, **kw: object) -> PlaygroundConfig:
    values: dict[str, object] = {
        "agents": agents,
        "zones": zones,
        "kafka_port_base": 9092,
        "http_port_base": 8080,
        "kafka_host": "127.0.0.1",
        "advertised_host": "127.0.0.1",
        "http_host": "127.0.0.1",
        "data_dir": tmp_path,
        "bucket_url": f"file://{tmp_path}/objects",
        "metadata_url": f"sqlite:///{tmp_path}/metadata.db",
        "flush_interval_ms": 10,
    }
    values.update(kw)
    return PlaygroundConfig(**values)  # type: ignore[arg-type]


def flag(argv: tuple[str, ...], name: str) -> str:
    """The last value of `name` (the child's parser keeps the last one)."""
    indexes = [i for i, a in enumerate(argv) if a == name]
    assert indexes, name
    return argv[indexes[-1] + 1]


def test_plan_ports_node_ids_and_round_robin_zones(tmp_path: Path) -> None:
    specs = plan(config(tmp_path), python="py")
    assert [s.kafka_port for s in specs] == list(range(9092, 9098))
    assert [s.http_port for s in specs] == list(range(8080, 8086))
    assert [s.zone for s in specs] == ["zone-1", "zone-2", "zone-3"] * 2
    for i, s in enumerate(specs):
        assert s.argv[:4] == ("py", "-m", "shoal.cli", "agent")
        assert flag(s.argv, "--node-id") == str(i)
        assert flag(s.argv, "--az") == s.zone
        assert flag(s.argv, "--kafka-port") == str(9092 + i)
        assert flag(s.argv, "--bucket") == f"file://{tmp_path}/objects"
        assert flag(s.argv, "--metadata") == f"sqlite:///{tmp_path}/metadata.db"
        assert s.log_path == tmp_path / "logs" / f"agent-{i}.log"


def test_forwarded_flags_reach_every_child_and_per_agent_values_win(tmp_path: Path) -> None:
    forwarded = ("--flush-interval-ms", "50", "--az", "ignored")
    specs = plan(config(tmp_path, agents=2, zones=2, forwarded=forwarded))
    for s in specs:
        assert flag(s.argv, "--flush-interval-ms") == "50"
        assert flag(s.argv, "--az") == s.zone


@pytest.mark.parametrize(("agents", "zones"), [(0, 1), (2, 3), (3, 0)])
def test_plan_rejects_bad_sizes(tmp_path: Path, agents: int, zones: int) -> None:
    with pytest.raises(ValueError):
        plan(config(tmp_path, agents=agents, zones=zones))


def test_banner_lists_bootstrap_per_zone_and_client_id_hint(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    specs = plan(cfg)
    zones = bootstraps_by_zone(specs, "127.0.0.1")
    assert zones == {
        "zone-1": "127.0.0.1:9092,127.0.0.1:9095",
        "zone-2": "127.0.0.1:9093,127.0.0.1:9096",
        "zone-3": "127.0.0.1:9094,127.0.0.1:9097",
    }
    text = banner(cfg, specs)
    for zone, boot in zones.items():
        assert f"{zone}    {boot}" in text
        assert f"shoal_az={zone}" in text
    assert "http://127.0.0.1:8085/metrics" in text
    assert text.count("Shoal") == 1


def test_busy_ports_are_reported(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        specs = plan(config(tmp_path, agents=1, zones=1, kafka_port_base=port))
        assert busy_ports(specs, "127.0.0.1", "127.0.0.1") == [port]


def test_cli_routes_several_agents_to_the_supervisor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[PlaygroundConfig] = []

    def fake_run(cfg: PlaygroundConfig) -> int:
        seen.append(cfg)
        return 7

    monkeypatch.setattr(playground, "run", fake_run)
    monkeypatch.delenv("SHOAL_AGENTS", raising=False)
    code = cli.main(
        [
            "playground", "--agents", "4", "--zones", "2", "--kafka-port", "19000",
            "--http-port", "18000", "--data-dir", str(tmp_path / "d"), "--node-id", "9",
            "--flush-interval-ms", "25", "--roles", "proxy", "--auto-create-topics", "false",
        ]
    )  # fmt: skip
    assert code == 7
    (cfg,) = seen
    assert (cfg.agents, cfg.zones, cfg.kafka_port_base, cfg.http_port_base) == (4, 2, 19000, 18000)
    assert cfg.data_dir == (tmp_path / "d").resolve()
    assert cfg.bucket_url == f"file://{(tmp_path / 'd').resolve()}/objects"
    assert cfg.flush_interval_ms == 25
    # Per-agent flags are set by the supervisor, not forwarded.
    assert "--node-id" not in cfg.forwarded
    assert cfg.forwarded == (
        "--roles", "proxy", "--flush-interval-ms", "25", "--auto-create-topics", "false",
    )  # fmt: skip


def test_cli_one_agent_stays_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(cfg: PlaygroundConfig) -> int:
        raise AssertionError("supervisor used for one agent")

    served: list[str | None] = []

    async def fake_serve(settings: object, banner: str | None) -> None:
        served.append(banner)

    monkeypatch.setattr(playground, "run", boom)
    monkeypatch.setattr(cli, "_serve", fake_serve)
    monkeypatch.delenv("SHOAL_AGENTS", raising=False)
    assert cli.main(["playground", "--data-dir", str(tmp_path / "d")]) == 0
    assert served and served[0] is not None and "playground is running" in served[0]
