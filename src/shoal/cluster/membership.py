"""Cluster membership: this agent's row in the metadata store, its heartbeats, and the list of
live agents every other part of the agent routes by (DESIGN.md §5).

Protocol:
- `start()` registers (one transaction that also hands out the node id: the requested one when
  no live agent holds it, else the smallest free one) and reads the live list.
- Every `heartbeat_interval_ms` a beat writes this agent's heartbeat and re-reads the list.
  An agent whose heartbeat is older than `heartbeat_timeout_ms` is gone; between beats a
  timer drops a peer the moment its last read heartbeat passes the timeout, so a dead agent
  leaves within the timeout rather than up to one interval after it. If this agent's own
  row has vanished (another agent cleaned it up after an expiry), it registers again, asking
  for the node id it had.
- `stop()` deletes the row at once, so peers drop this agent at their next beat instead of
  after the timeout.
- `refresh()` re-reads the list at once, between beats: a peer that has just registered or
  deregistered says so (`cluster/membership_notify.py`), so agents agree on the view within a
  round trip instead of up to one interval. Agents that disagree hand clients different
  broker lists, and librdkafka drops a broker missing from one answer, failing its requests.

Store outages: a failed beat keeps the last good view. Once this agent has gone
`heartbeat_timeout_ms` without a successful heartbeat, its peers have dropped it, so it drops
itself from its own view as well: the view then matches theirs (same group coordinators),
and Metadata sends clients to agents that can still reach the store. It keeps answering with
itself only when it knows of no other agent. The first successful beat restores everything.

Listeners are plain callables run on the event loop after every change of the view (not on
heartbeat-only changes); they must be quick and must not raise (errors are logged).

Clock: `clock()` returns epoch milliseconds and is injectable; heartbeats are compared across
hosts, so agents' clocks must agree to well within the heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from shoal.cluster.model import ClusterView
from shoal.meta.agent_store import AgentInfo
from shoal.meta.store import MetadataStore

log = logging.getLogger(__name__)

Listener = Callable[[ClusterView], None]
HEARTBEAT_INTERVAL_MS = 1_000
HEARTBEAT_TIMEOUT_MS = 5_000
_STOP_TIMEOUT_S = 2.0


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def new_agent_id() -> str:
    return uuid.uuid4().hex


PROXY_ROLE = "proxy"
JOBS_ROLE = "jobs"


def serves_clients(agent: AgentInfo) -> bool:
    """Agents with the `proxy` role listen for Kafka clients; others (`jobs` alone) do not."""
    return PROXY_ROLE in agent.roles


def _identity(a: AgentInfo) -> tuple[Any, ...]:
    """What routing depends on: everything but the heartbeat time."""
    return (a.agent_id, a.node_id, a.host, a.kafka_port, a.http_port, a.az, a.agent_group,
            a.roles)


class Membership:
    """`ClusterView` backed by the metadata store's agents table.

    `local` describes this agent; its `node_id` is ignored (the store assigns one, preferring
    `requested_node_id`), as are its timestamps.
    """

    def __init__(
        self,
        store: MetadataStore,
        local: AgentInfo,
        requested_node_id: int | None = None,
        *,
        heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS,
        heartbeat_timeout_ms: int = HEARTBEAT_TIMEOUT_MS,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if heartbeat_interval_ms < 1 or heartbeat_timeout_ms <= heartbeat_interval_ms:
            raise ValueError(
                "need 0 < heartbeat_interval_ms < heartbeat_timeout_ms, got"
                f" {heartbeat_interval_ms} and {heartbeat_timeout_ms}"
            )
        self.store = store
        self.interval_ms = heartbeat_interval_ms
        self.timeout_ms = heartbeat_timeout_ms
        self._clock = clock
        self._requested = requested_node_id
        self._me = local
        self._live: list[AgentInfo] = [local]  # sorted by node id
        self._serving = [local] if serves_clients(local) else []
        self._known: list[AgentInfo] = [local]  # last good list, self included
        self._by_node: dict[int, AgentInfo] = {local.node_id: local}
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._registered = False
        self._last_ok_ms: int | None = None
        self._self_expired = False
        self._last_beat_ok = True
        self.version = 0  # bumped on every change of the view
        # Reads of the live list are applied in the order they were made: a slow read must
        # not overwrite a newer one. `_asked` counts refresh requests, `_read_for` is the
        # count the latest read started after (a request it covers needs no read of its own).
        self._read_lock = asyncio.Lock()
        self._asked = 0
        self._read_for = 0
        self.refreshes = 0
        self.beats_failed = 0
        self.registrations = 0

    # -- ClusterView -----------------------------------------------------------------------
    @property
    def me(self) -> AgentInfo:
        return self._me

    def live(self) -> list[AgentInfo]:
        """The live agents that serve clients (the `proxy` role): every routing decision
        (Metadata, coordinators, the block ring) is over these. A jobs-only agent is live but
        never named to a client nor given a block or a group."""
        return list(self._serving)

    def in_zone(self, az: str) -> list[AgentInfo]:
        return [a for a in self._serving if a.az == az]

    def by_node_id(self, node_id: int) -> AgentInfo | None:
        agent = self._by_node.get(node_id)
        return agent if agent is not None and serves_clients(agent) else None

    def zones(self) -> dict[str, list[AgentInfo]]:
        """Every live agent by zone, whatever its roles (for status pages)."""
        out: dict[str, list[AgentInfo]] = {}
        for agent in self._live:
            out.setdefault(agent.az, []).append(agent)
        return dict(sorted(out.items()))

    def leads_jobs(self) -> bool:
        """This agent is the live agent with the `jobs` role and the smallest node id: the one
        that runs the jobs that are safe but wasteful to run twice (file compaction). Two
        agents may both believe it while their views differ, for a heartbeat or two."""
        runners = [a for a in self._live if JOBS_ROLE in a.roles]
        return bool(runners) and runners[0].agent_id == self._me.agent_id

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def lease_valid(self) -> bool:
        """The last heartbeat that reached the store is younger than the timeout, so peers
        still count this agent live. Read after a pause (SIGSTOP, a stalled VM) before the
        heartbeat loop has run again, it is False: peers may have taken its groups over."""
        return self._last_ok_ms is not None and self._clock() - self._last_ok_ms < self.timeout_ms

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Register and read the live list; raises the store's error if it cannot."""
        now = self._clock()
        async with asyncio.timeout(self.timeout_ms / 1000):
            await self._register(now)
            agents = await self.store.list_agents(now - self.timeout_ms)
        self._last_ok_ms = now
        self._apply(agents)
        self._task = asyncio.create_task(self._run(), name="shoal-membership")

    async def stop(self) -> None:
        """Stop beating and remove this agent's row (bounded wait; failures are logged: the
        row then expires after the heartbeat timeout)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._registered:
            return
        self._registered = False
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await self.store.deregister_agent(self._me.agent_id)
        except Exception as exc:
            log.warning("membership: could not deregister (it will expire): %s", exc)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.interval_ms / 1000
        while True:
            wake = next_beat
            expiry_ms = self._next_expiry_ms()
            if expiry_ms is not None:
                wake = min(wake, loop.time() + max(0, expiry_ms - self._clock()) / 1000)
            await asyncio.sleep(max(0.0, wake - loop.time()))
            if loop.time() >= next_beat:
                await self.beat()
                next_beat = loop.time() + self.interval_ms / 1000
            else:
                self._expire_silent_peers(self._clock())

    def _next_expiry_ms(self) -> int | None:
        """When the peer heard from least recently times out (the first millisecond its
        heartbeat is older than the timeout), by the heartbeats last read. None after a failed
        beat: the view is then kept as it was (see the module docstring), since silence says
        nothing about the peers, and the next beat is the only thing to wait for."""
        if not self._last_beat_ok:
            return None
        beats = [a.heartbeat_at_ms for a in self._known if a.agent_id != self._me.agent_id]
        return min(beats) + self.timeout_ms + 1 if beats else None

    def _expire_silent_peers(self, now: int) -> None:
        """Drop peers whose last known heartbeat is past the timeout without waiting for the
        next beat: a dead agent then leaves the rings within the timeout itself, not up to one
        interval later. A peer that did beat meanwhile is back at the next read."""
        alive = [
            a for a in self._known
            if a.agent_id == self._me.agent_id or a.heartbeat_at_ms >= now - self.timeout_ms
        ]
        if len(alive) != len(self._known):
            self._known = alive
            self._publish(alive)

    async def beat(self) -> bool:
        """One heartbeat and refresh; False when the store could not be reached."""
        now = self._clock()
        async with self._read_lock:
            self._read_for = self._asked
            try:
                async with asyncio.timeout(self.timeout_ms / 1000):
                    if not await self.store.heartbeat_agent(self._me.agent_id, now):
                        log.warning(
                            "membership: this agent's row was gone (expired?); registering again"
                        )
                        await self._register(now)
                    agents = await self.store.list_agents(now - self.timeout_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.beats_failed += 1
                self._last_beat_ok = False
                self._on_outage(now, exc)
                return False
            if self._self_expired:
                log.info("membership: metadata store reachable again")
            self._last_ok_ms = now
            self._self_expired = False
            self._last_beat_ok = True
            self._apply(agents)
            return True

    async def refresh(self) -> bool:
        """Re-read the live list now (no heartbeat is written). Concurrent calls share reads:
        a call returns once a read that started after it was made has been applied. False when
        the store could not be read (the view is kept; the next beat deals with outages)."""
        self._asked += 1
        wanted = self._asked
        async with self._read_lock:
            if self._read_for >= wanted:
                return True
            self._read_for = self._asked
            now = self._clock()
            try:
                async with asyncio.timeout(self.timeout_ms / 1000):
                    agents = await self.store.list_agents(now - self.timeout_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("membership: refresh failed, keeping the view: %s", exc)
                return False
            self.refreshes += 1
            if self._registered:
                self._apply(agents)
            return True

    async def _register(self, now: int) -> None:
        wanted = self._requested if not self._registered else self._me.node_id
        local = replace(self._me, started_at_ms=self._me.started_at_ms or now,
                        heartbeat_at_ms=now)
        self._me = await self.store.register_agent(local, wanted, now - self.timeout_ms)
        self._registered = True
        self.registrations += 1

    def _on_outage(self, now: int, exc: Exception) -> None:
        silent_ms = now - (self._last_ok_ms if self._last_ok_ms is not None else now)
        if silent_ms < self.timeout_ms or self._self_expired:
            log.warning("membership: heartbeat failed, keeping the last view: %s", exc)
            return
        log.warning(
            "membership: no heartbeat for %d ms; peers have dropped this agent, so it leaves"
            " its own view too: %s", silent_ms, exc,
        )
        self._self_expired = True
        self._publish(self._known)

    # -- the view ----------------------------------------------------------------------------
    def _apply(self, agents: list[AgentInfo]) -> None:
        mine = [a for a in agents if a.agent_group == self._me.agent_group]
        if not any(a.agent_id == self._me.agent_id for a in mine):
            # Registered a moment ago, or listed just before our row came back.
            mine.append(self._me)
        self._known = sorted(mine, key=lambda a: a.node_id)
        self._publish(self._known)

    def _publish(self, known: list[AgentInfo]) -> None:
        live = known
        if self._self_expired:
            live = [a for a in known if a.agent_id != self._me.agent_id] or [self._me]
        changed = [_identity(a) for a in live] != [_identity(a) for a in self._live]
        self._live = list(live)
        self._serving = [a for a in live if serves_clients(a)]
        self._by_node = {a.node_id: a for a in live}
        if not changed:
            return
        self.version += 1
        log.info(
            "membership: %d live agents: %s", len(live),
            ", ".join(f"{a.node_id}@{a.az}" for a in live),
        )
        for listener in list(self._listeners):
            try:
                listener(self)
            except Exception:
                log.exception("membership listener failed")

    # -- observability -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "me": {"agent_id": self._me.agent_id, "node_id": self._me.node_id,
                   "az": self._me.az, "agent_group": self._me.agent_group},
            "heartbeat_interval_ms": self.interval_ms,
            "heartbeat_timeout_ms": self.timeout_ms,
            "view_version": self.version,
            "store_reachable": not self._self_expired,
            "last_heartbeat_age_ms": None if self._last_ok_ms is None else now - self._last_ok_ms,
            "beats_failed": self.beats_failed,
            "refreshes": self.refreshes,
            "zones": {
                az: [
                    {
                        "node_id": a.node_id,
                        "agent_id": a.agent_id,
                        "kafka": f"{a.host}:{a.kafka_port}",
                        "http": f"{a.host}:{a.http_port}",
                        "roles": list(a.roles),
                        "heartbeat_age_ms": now - a.heartbeat_at_ms,
                        "me": a.agent_id == self._me.agent_id,
                    }
                    for a in agents
                ]
                for az, agents in self.zones().items()
            },
        }
