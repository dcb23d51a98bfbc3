"""The `/v1/status` document: named sections in a fixed order, each supplied by the component
it describes (`Membership.status`, `BlockCache.stats`, ...), assembled by the HTTP app.

Here are only the pieces that describe the process rather than one component: the `agent`
section (identity and settings), a fixed value (the cluster id), the metadata store's URL with
its password hidden, and `merged` for a section made of several components' parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from shoal import __version__
from shoal.cluster.model import ClusterView
from shoal.settings import Settings

Section = Callable[[], Any]


def document(sections: Sequence[tuple[str, Section]]) -> dict[str, Any]:
    return {name: section() for name, section in sections}


def fixed(value: Any) -> Section:
    """A section that never changes (the cluster id, a store URL)."""
    return lambda: value


def merged(own: Callable[[], dict[str, Any]], **parts: Section) -> Callable[[], dict[str, Any]]:
    """One component's keys, then other components' sections under their names (`peers`: the
    ring's counters, with the peer server's and the membership notices' inside)."""
    return lambda: {**own(), **{name: part() for name, part in parts.items()}}


class AgentSection:
    """The `agent` section: version, node id (the cluster view's), zone, ports, start time."""

    def __init__(self, settings: Settings, view: ClusterView, started_at: float) -> None:
        self._settings = settings
        self._view = view
        self.started_at = started_at

    def status(self) -> dict[str, Any]:
        s = self._settings
        return {
            "version": __version__,
            "node_id": self._view.me.node_id,
            "az": s.az,
            "agent_group": s.agent_group,
            "roles": list(s.roles),
            "kafka": f"{s.advertised}:{s.kafka_port}",
            "http": f"{s.http_host}:{s.http_port}",
            "flush_interval_ms": s.flush_interval_effective_ms,
            "started_at": self.started_at,
            "uptime_s": round(time.time() - self.started_at, 1),
        }


def redact(url: str) -> str:
    """The URL without its user and password (`postgresql://***@host/db`)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
