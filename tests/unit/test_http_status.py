"""The `/v1/status` document: sections supplied by the components, assembled in order by the
HTTP app, with the same shape as before the sections were split (tools and tests read it)."""

from __future__ import annotations

from pathlib import Path

from shoal.agent import Agent
from shoal.cluster.cluster_id import cluster_id_for
from shoal.handlers.base import REGISTRY
from shoal.http.status import document, fixed, merged, redact
from shoal.settings import Settings


def test_document_keeps_the_order_and_calls_each_section() -> None:
    calls = []

    def counted() -> int:
        calls.append(1)
        return len(calls)

    sections = [("b", counted), ("a", fixed({"x": 1})), ("c", merged(lambda: {"k": 0}, n=counted))]
    assert document(sections) == {"b": 1, "a": {"x": 1}, "c": {"k": 0, "n": 2}}
    assert list(document(sections)) == ["b", "a", "c"]
    assert list(document(sections)["c"]) == ["k", "n"]


def test_redact_hides_user_and_password() -> None:
    assert redact("postgresql://shoal:secret@db.example:5432/shoal") == (
        "postgresql://***@db.example:5432/shoal"
    )
    assert redact("sqlite:////data/metadata.db") == "sqlite:////data/metadata.db"


def test_agent_status_sections(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), az="zone-a", node_id=3, http_port=18080)
    agent = Agent(settings)
    doc = agent.http.status()
    assert list(doc) == ["agent", "cluster_id", "cluster", "object_store", "metadata_store",
                         "block_cache", "peers", "groups", "apis"]  # fmt: skip
    assert list(doc["agent"]) == [
        "version", "node_id", "az", "agent_group", "roles", "kafka", "http", "flush_interval_ms",
        "started_at", "uptime_s",
    ]  # fmt: skip
    assert doc["agent"]["node_id"] == agent.membership.me.node_id == 3
    assert doc["agent"]["az"] == "zone-a" and doc["agent"]["http"] == "127.0.0.1:18080"
    assert doc["agent"]["started_at"] == agent.started_at
    assert doc["cluster_id"] == cluster_id_for(settings.metadata_url)
    cluster = agent.membership.status()  # ages in it move with the clock
    assert list(doc["cluster"]) == list(cluster) and doc["cluster"]["me"] == cluster["me"]
    assert doc["object_store"] == {
        "url": settings.bucket_url, "requests": {"get": 0, "put": 0, "delete": 0, "list": 0}
    }  # fmt: skip
    assert doc["metadata_store"] == {"url": settings.metadata_url}
    assert doc["block_cache"] == agent.blocks.stats()
    assert list(doc["peers"]) == [*agent.ring_source.stats(), "server", "membership_notices"]
    assert doc["peers"]["server"] == agent.peer_server.stats()
    assert doc["peers"]["membership_notices"] == agent.membership_notify.stats()
    assert list(doc["groups"]) == [
        "loaded_by_state", "members", "rebalances_total", "lag_taken_at", "lag_truncated",
        "lag_by_group", "lag",
    ]  # fmt: skip
    assert doc["apis"] == {s.name: [s.min_version, s.max_version] for s in REGISTRY.values()}
