"""The classic group state machine under an injected clock: the harness, request helpers and
a ready Stable group shared by the `test_group_*` state machine tests.

No sleeping: time moves only when a test calls `advance`, which ticks the group at the new
instant as the coordinator's timer would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.groups.group import Group, PersistDone
from shoal.groups.model import (
    GroupConfig,
    GroupState,
    JoinRequest,
    JoinResult,
    SyncResult,
)
from shoal.meta.group_store import StoredGroup
from shoal.protocol import errors

SESSION = 10_000
REBALANCE = 30_000
DELAY = 300
PROTO = (("range", b"sub-range"), ("roundrobin", b"sub-rr"))


@dataclass
class Harness:
    now: int = 1_000_000
    wakes: list[tuple[str, int]] = field(default_factory=list)
    saved: list[StoredGroup] = field(default_factory=list)
    deferred: list[tuple[StoredGroup, PersistDone]] = field(default_factory=list)
    defer_persist: bool = False
    persist_error: int = errors.NONE
    group: Group | None = None

    def clock(self) -> int:
        return self.now

    def wake(self, group_id: str, at: int) -> None:
        self.wakes.append((group_id, at))

    def persist(self, stored: StoredGroup, done: PersistDone) -> None:
        if self.defer_persist:
            self.deferred.append((stored, done))
            return
        self.saved.append(stored)
        done(self.persist_error)

    def make(self, config: GroupConfig | None = None) -> Group:
        self.group = Group(
            "g",
            config or GroupConfig(initial_rebalance_delay_ms=DELAY),
            self.clock,
            self.wake,
            self.persist,
        )
        return self.group

    def advance(self, ms: int) -> None:
        self.now += ms
        assert self.group is not None
        self.group.tick(self.now)


def state(g: Group) -> GroupState:
    """Read through a call, so the type checker does not narrow across state changes."""
    return g.state


class Answer:
    """Collects a callback's answers."""

    def __init__(self) -> None:
        self.results: list[JoinResult | SyncResult] = []

    def __call__(self, result: JoinResult | SyncResult) -> None:
        self.results.append(result)

    @property
    def one(self) -> JoinResult:
        assert len(self.results) == 1, self.results
        r = self.results[0]
        assert isinstance(r, JoinResult)
        return r

    @property
    def sync(self) -> SyncResult:
        assert len(self.results) == 1, self.results
        r = self.results[0]
        assert isinstance(r, SyncResult)
        return r


def jreq(
    member_id: str = "",
    instance: str | None = None,
    protocols: tuple[tuple[str, bytes], ...] = PROTO,
    session: int = SESSION,
    rebalance: int = REBALANCE,
    require_known: bool = False,
    protocol_type: str = "consumer",
    client: str = "c",
) -> JoinRequest:
    return JoinRequest(
        member_id,
        instance,
        client,
        "/127.0.0.1",
        session,
        rebalance,
        protocol_type,
        protocols,
        require_known,
    )


def join(g: Group, **kw: object) -> Answer:
    a = Answer()
    g.join(jreq(**kw), a)  # type: ignore[arg-type]
    return a


def sync(g: Group, member: str, gen: int, assignments: dict[str, bytes] | None = None,
         instance: str | None = None, ptype: str | None = None,
         pname: str | None = None) -> Answer:  # fmt: skip
    a = Answer()
    g.sync(member, instance, gen, ptype, pname, assignments or {}, a)
    return a


def stable_group(h: Harness, n: int = 2, **kw: object) -> tuple[Group, list[str]]:
    """A Stable group of n dynamic members (generation 1); returns member ids, leader first."""
    g = h.make()
    answers = [join(g, client=f"c{i}", **kw) for i in range(n)]  # type: ignore[arg-type]
    assert state(g) is GroupState.PREPARING_REBALANCE
    h.advance(DELAY)  # the initial delay saw joins, so it waits once more
    h.advance(DELAY)
    assert state(g) is GroupState.COMPLETING_REBALANCE
    results = [a.one for a in answers]
    ids = [r.member_id for r in results]
    leader = results[0].leader
    order = [leader] + [m for m in ids if m != leader]
    sync(g, leader, 1, {m: m.encode() for m in ids})
    for m in order[1:]:
        sync(g, m, 1)
    assert state(g) is GroupState.STABLE
    return g, order
