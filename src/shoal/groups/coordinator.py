"""The asyncio shell around the group state machines of the groups this agent coordinates.

It owns the clock and the one timer task that ticks groups at their deadlines, loads group
state lazily from the metadata store on first access (so a restarted agent, or a new owner,
picks up where the last one stopped), serialises each group's metadata writes, and turns the
state machines' callbacks into awaitable answers for the handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from shoal import metrics
from shoal.groups.group import Group, PersistDone
from shoal.groups.model import (
    GroupConfig,
    GroupState,
    GroupView,
    JoinRequest,
    JoinResult,
    SyncResult,
)
from shoal.groups.ownership import CoordinatorNode, Ownership
from shoal.meta.group_store import CommittedOffset, StoredGroup
from shoal.meta.store import MetadataError, MetadataStore, StaleCoordinatorError
from shoal.protocol import errors

log = logging.getLogger(__name__)

GROUPS_IN_MEMORY_MAX = 10_000


class GroupsFullError(Exception):
    """No room for a new group: every group in memory has members (JoinGroup answers
    COORDINATOR_NOT_AVAILABLE, which clients retry)."""
R = TypeVar("R")


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


class GroupCoordinator:
    def __init__(
        self,
        store: MetadataStore,
        ownership: Ownership,
        config: GroupConfig | None = None,
        clock: Callable[[], int] = monotonic_ms,
        groups_in_memory_max: int = GROUPS_IN_MEMORY_MAX,
        handover_ms: int = 0,
    ) -> None:
        self.store = store
        self.ownership = ownership
        self.config = config or GroupConfig()
        self._clock = clock
        self._groups_max = groups_in_memory_max
        self._groups: dict[str, Group] = {}
        self._loading: dict[str, asyncio.Task[Group | None]] = {}
        self._saves: dict[str, asyncio.Task[None]] = {}
        self._timers: list[tuple[int, int, str]] = []
        self._timer_seq = 0
        self._timer_changed = asyncio.Event()
        self._driver: asyncio.Task[None] | None = None
        self._started = False
        self.rebalances_total = 0
        self.handover_ms = handover_ms
        self._hold_until = 0

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._started = True
        self._driver = asyncio.create_task(self._drive(), name="shoal-groups-timer")

    async def stop(self) -> None:
        """Answer waiting joins and syncs with NOT_COORDINATOR (clients rediscover and rejoin
        on the next start or on another agent) and let in-flight metadata writes finish."""
        self._started = False
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None
        self._drop_all()
        saves = [t for t in self._saves.values() if not t.done()]
        if saves:
            await asyncio.wait(saves, timeout=5.0)

    # -- ownership -------------------------------------------------------------------------------
    def coordinator_for(self, key: str) -> CoordinatorNode | None:
        return self.ownership.owner_of(key)

    def hold_new_groups(self) -> None:
        """Membership changed: for `handover_ms`, groups this agent does not hold yet answer
        COORDINATOR_LOAD_IN_PROGRESS (retriable). Agents see a change up to one heartbeat
        apart; the wait lets the previous owner notice and drop a group before this one loads
        it from the store, so two agents never run one group's rebalance at once."""
        self._hold_until = self._clock() + self.handover_ms

    def end_hold(self) -> None:
        """Every agent that could hold a group this one now owns has been seen to drop it
        (the membership notices of a joining agent were all answered): no need to wait."""
        self._hold_until = 0

    def release_unowned(self) -> list[str]:
        """Ownership moved (membership changed): drop the groups another agent now owns.
        Waiting joins and syncs get NOT_COORDINATOR; members rediscover the coordinator, and
        the new owner loads the group from the store. Returns the group ids dropped."""
        released = []
        for group_id, group in list(self._groups.items()):
            if not self._owns(group_id):
                group.mark_dead()
                del self._groups[group_id]
                released.append(group_id)
        return released

    def _owns(self, group_id: str) -> bool:
        owner = self.ownership.owner_of(group_id)
        return owner is not None and owner.node_id == self.ownership.node_id

    def _check_lease(self) -> bool:
        """False, having dropped every group, when peers may no longer count this agent live
        (see `Ownership.lease_valid`): its groups may be another agent's by now, and what it
        holds of them stale. They reload, claimed anew, once it owns them again."""
        if self.ownership.lease_valid():
            return True
        if self._groups:
            log.warning("membership lease lost (paused?): dropping %d groups", len(self._groups))
            self._drop_all()
        return False

    def _status(self, group_id: str) -> int:
        """Kafka's validateGroupStatus: is this agent the coordinator, and ready."""
        if not self._check_lease() or not self._owns(group_id):
            return errors.NOT_COORDINATOR
        if not self._started:
            return errors.COORDINATOR_LOAD_IN_PROGRESS
        if group_id not in self._groups and self._clock() < self._hold_until:
            return errors.COORDINATOR_LOAD_IN_PROGRESS
        return errors.NONE

    # -- group access ----------------------------------------------------------------------------
    async def _get(self, group_id: str, create: bool) -> Group | None:
        """The group in memory, else loaded from the store (claimed: see `_load`); with
        `create`, a new group if the store has none. One load per group runs at a time, so
        one claim backs the group in memory."""
        while True:
            group = self._groups.get(group_id)
            if group is not None:
                return group
            task = self._loading.get(group_id)
            if task is None or task.done():
                if create:
                    self._make_room()
                    if len(self._groups) >= self._groups_max:
                        raise GroupsFullError(f"{len(self._groups)} groups in memory")
                task = asyncio.create_task(self._load(group_id, create))
                self._loading[group_id] = task
                task.add_done_callback(
                    lambda t: self._loading.pop(group_id, None)
                    if self._loading.get(group_id) is t
                    else None
                )
            group = await asyncio.shield(task)
            if group is not None or not create:
                return group
            # That load was not allowed to create the group; the next one is.

    async def _load(self, group_id: str, create: bool) -> Group | None:
        """Claim the group in the store and build it from what the claim read. A group with
        nothing stored is only claimed when it is being created: a heartbeat or describe for
        an unknown group stays a read."""
        if not create and await self.store.load_group(group_id) is None:
            return None
        epoch, stored = await self.store.claim_group(group_id)
        return self._new_group(group_id, stored, epoch)

    def _new_group(self, group_id: str, stored: StoredGroup | None, epoch: int) -> Group:
        # A stored group is loaded even past the limit: it has state a client is waiting on.
        self._make_room()
        args = (
            self.config,
            self._clock,
            self._wake,
            self._persist_fn(group_id, epoch),
            self._count_rebalance,
        )
        group = Group(group_id, *args) if stored is None else Group.from_stored(stored, *args)
        group.coordinator_epoch = epoch
        self._groups[group_id] = group
        return group

    def _drop_stale(self, group_id: str, epoch: int | None) -> None:
        """The store refused a write with `epoch`: another agent claimed the group since.
        Drop it (if it is still the one of that claim); a later request reloads it."""
        group = self._groups.get(group_id)
        if group is not None and group.coordinator_epoch == epoch:
            log.warning("group %s: claimed by another agent since; dropping it", group_id)
            group.mark_dead()
            del self._groups[group_id]

    def _drop_all(self) -> None:
        for group in self._groups.values():
            group.mark_dead()
        self._groups.clear()

    def _make_room(self) -> None:
        """Bound memory: evict Empty groups (fully in the store, they reload on demand), then
        groups whose only members are pending (KIP-394 member ids handed out but never used:
        what JoinGroups with made-up group ids leave behind), down to half the limit."""
        if len(self._groups) < self._groups_max:
            return
        for pending_too in (False, True):
            for gid, group in list(self._groups.items()):
                save = self._saves.get(gid)
                if (
                    group.state is GroupState.EMPTY
                    and not group.members
                    and (pending_too or not group.pending_members)
                    and (save is None or save.done())
                ):
                    del self._groups[gid]
                    if len(self._groups) < self._groups_max // 2:
                        return

    def loaded_groups(self) -> list[Group]:
        return list(self._groups.values())

    # -- timers and persistence ------------------------------------------------------------------
    def _wake(self, group_id: str, at: int) -> None:
        self._timer_seq += 1
        head = self._timers[0][0] if self._timers else None
        heapq.heappush(self._timers, (at, self._timer_seq, group_id))
        if head is None or at < head:
            self._timer_changed.set()

    def poke(self) -> None:
        """Re-read the clock now (the timer sleeps in real time; an injected clock that
        jumps ahead, as in tests, needs this to be noticed)."""
        self._timer_changed.set()

    async def _drive(self) -> None:
        while True:
            self._timer_changed.clear()
            now = self._clock()
            # After a pause, members' deadlines have all passed: expiring them would write an
            # emptied group over the state its new coordinator keeps (the write would be
            # refused, but the group would still be wrongly emptied here).
            if not self._check_lease():
                self._timers.clear()
            while self._timers and self._timers[0][0] <= now:
                _, _, group_id = heapq.heappop(self._timers)
                group = self._groups.get(group_id)
                if group is not None:
                    try:
                        group.tick(now)
                    except Exception:
                        log.exception("group %s: tick failed", group_id)
            timeout = (self._timers[0][0] - now) / 1000 if self._timers else None
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that arrives
            # as the event is set, and stop() then waited for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._timer_changed.wait()

    def _persist_fn(
        self, group_id: str, epoch: int
    ) -> Callable[[StoredGroup, PersistDone], None]:
        def persist(stored: StoredGroup, done: PersistDone) -> None:
            previous = self._saves.get(group_id)
            task = asyncio.get_running_loop().create_task(
                self._save(previous, stored, epoch, done)
            )
            self._saves[group_id] = task

            def forget(t: asyncio.Task[None]) -> None:
                if self._saves.get(group_id) is t:
                    del self._saves[group_id]

            task.add_done_callback(forget)

        return persist

    async def _save(
        self,
        previous: asyncio.Task[None] | None,
        stored: StoredGroup,
        epoch: int,
        done: PersistDone,
    ) -> None:
        # One write at a time per group, in order: a late older snapshot must never win.
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        stale = False
        try:
            await self.store.save_group(stored, epoch)
            code = errors.NONE
        except StaleCoordinatorError:
            code, stale = errors.NOT_COORDINATOR, True
        except MetadataError as exc:
            log.warning("group %s: storing metadata failed: %s", stored.group_id, exc)
            code = errors.COORDINATOR_NOT_AVAILABLE
        try:
            done(code)
        except Exception:
            log.exception("group %s: after store", stored.group_id)
        if stale:
            self._drop_stale(stored.group_id, epoch)

    # -- the group protocol ------------------------------------------------------------------
    async def join(self, group_id: str, req: JoinRequest) -> JoinResult:
        code = self._status(group_id)
        if code == errors.NONE and not group_id:
            code = errors.INVALID_GROUP_ID
        cfg = self.config
        if code == errors.NONE and not (
            cfg.min_session_timeout_ms <= req.session_timeout_ms <= cfg.max_session_timeout_ms
        ):
            code = errors.INVALID_SESSION_TIMEOUT
        if code != errors.NONE:
            return JoinResult(code, req.member_id)
        try:
            group = await self._get(group_id, create=req.member_id == "")
        except (MetadataError, GroupsFullError):
            return JoinResult(errors.COORDINATOR_NOT_AVAILABLE, req.member_id)
        if group is None:
            return JoinResult(errors.UNKNOWN_MEMBER_ID, req.member_id)
        future: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        group.join(req, _resolver(future))
        return await future

    async def sync(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation: int,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
    ) -> SyncResult:
        code = self._status(group_id)
        if code != errors.NONE:
            return SyncResult(code)
        try:
            group = await self._get(group_id, create=False)
        except MetadataError:
            return SyncResult(errors.COORDINATOR_NOT_AVAILABLE)
        if group is None:
            return SyncResult(errors.UNKNOWN_MEMBER_ID)
        future: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        group.sync(
            member_id,
            group_instance_id,
            generation,
            protocol_type,
            protocol_name,
            assignments,
            _resolver(future),
        )
        return await future

    async def heartbeat(
        self, group_id: str, member_id: str, group_instance_id: str | None, generation: int
    ) -> int:
        code = self._status(group_id)
        if code != errors.NONE:
            return code
        try:
            group = await self._get(group_id, create=False)
        except MetadataError:
            return errors.COORDINATOR_NOT_AVAILABLE
        if group is None:
            return errors.UNKNOWN_MEMBER_ID
        return group.heartbeat(member_id, group_instance_id, generation)

    async def leave(
        self, group_id: str, identities: list[tuple[str, str | None]]
    ) -> tuple[int, list[int]]:
        code = self._status(group_id)
        if code != errors.NONE:
            return code, [code] * len(identities)
        try:
            group = await self._get(group_id, create=False)
        except MetadataError:
            return errors.COORDINATOR_NOT_AVAILABLE, []
        if group is None:
            return errors.NONE, [errors.UNKNOWN_MEMBER_ID] * len(identities)
        return group.leave(identities)

    # -- offsets ---------------------------------------------------------------------------------
    async def commit_offsets(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation: int,
        offsets: list[CommittedOffset],
    ) -> int:
        """Check membership, then store every offset in one transaction. Returns the error
        that applies to every partition of the request (0 when stored)."""
        code = self._status(group_id)
        if code != errors.NONE:
            return code
        try:
            group = await self._get(group_id, create=False)
            if group is None:
                # No group state: only a commit outside group management is accepted.
                code = errors.NONE if generation < 0 else errors.ILLEGAL_GENERATION
            else:
                code = group.check_commit(member_id, group_instance_id, generation)
            if code == errors.NONE and offsets:
                epoch = group.coordinator_epoch if group is not None else None
                try:
                    await self.store.commit_offsets(group_id, offsets, epoch)
                except StaleCoordinatorError:
                    self._drop_stale(group_id, epoch)
                    return errors.NOT_COORDINATOR
        except MetadataError as exc:
            log.warning("group %s: commit failed: %s", group_id, exc)
            return errors.COORDINATOR_NOT_AVAILABLE
        return code

    async def fetch_offsets(
        self, group_id: str, partitions: list[tuple[str, int]] | None
    ) -> tuple[int, list[CommittedOffset]]:
        code = self._status(group_id)
        if code != errors.NONE:
            return code, []
        try:
            return errors.NONE, await self.store.fetch_offsets(group_id, partitions)
        except MetadataError:
            return errors.COORDINATOR_NOT_AVAILABLE, []

    async def delete_offsets(
        self, group_id: str, partitions: list[tuple[str, int]]
    ) -> tuple[int, dict[tuple[str, int], int]]:
        """OffsetDelete: (group error, per-partition errors)."""
        code = self._status(group_id)
        if code != errors.NONE:
            return code, {}
        try:
            group = await self._get(group_id, create=False)
            if group is None and not await self.store.fetch_offsets(group_id):
                return errors.GROUP_ID_NOT_FOUND, {}
            if group is not None and group.state is GroupState.DEAD:
                return errors.GROUP_ID_NOT_FOUND, {}
            results = dict.fromkeys(partitions, errors.NONE)
            if group is not None and group.state is not GroupState.EMPTY:
                if group.protocol_type != "consumer":
                    return errors.NON_EMPTY_GROUP, {}
                subscribed = group.subscribed_topics()
                for topic, partition in partitions:
                    if subscribed is None or topic in subscribed:
                        results[(topic, partition)] = errors.GROUP_SUBSCRIBED_TO_TOPIC
            deletable = [k for k, c in results.items() if c == errors.NONE]
            if deletable:
                await self.store.delete_offsets(group_id, deletable)
        except MetadataError:
            return errors.COORDINATOR_NOT_AVAILABLE, {}
        return errors.NONE, results

    # -- admin -------------------------------------------------------------------------------
    async def list_groups(self) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) of every group this agent coordinates."""
        listed = {
            g.group_id: (g.protocol_type, g.state)
            for g in await self.store.list_groups()
            if self._owns(g.group_id)
        }
        for group in self._groups.values():
            if group.state is not GroupState.DEAD:
                listed[group.group_id] = (group.protocol_type or "", group.state.value)
        return [(gid, ptype, state) for gid, (ptype, state) in sorted(listed.items())]

    async def describe_group(self, group_id: str) -> tuple[int, GroupView | None]:
        code = self._status(group_id)
        if code != errors.NONE:
            return code, None
        try:
            group = await self._get(group_id, create=False)
            if group is not None and group.state is not GroupState.DEAD:
                return errors.NONE, group.view()
            if group is None and await self.store.fetch_offsets(group_id):
                return errors.NONE, GroupView(group_id, "Empty", "", "", (), 0, None)
        except MetadataError:
            return errors.COORDINATOR_NOT_AVAILABLE, None
        return errors.GROUP_ID_NOT_FOUND, None

    async def delete_group(self, group_id: str) -> int:
        code = self._status(group_id)
        if code != errors.NONE:
            return code
        if not group_id:
            return errors.INVALID_GROUP_ID
        try:
            group = await self._get(group_id, create=False)
            if group is not None:
                if group.state is GroupState.DEAD:
                    return errors.GROUP_ID_NOT_FOUND
                if group.state is not GroupState.EMPTY or group.pending_members:
                    return errors.NON_EMPTY_GROUP
                # Dead until the rows are gone, so that nothing reloads the old state.
                group.mark_dead()
                try:
                    await self.store.delete_group(group_id)
                finally:
                    if self._groups.get(group_id) is group:
                        del self._groups[group_id]
                return errors.NONE
            return (
                errors.NONE
                if await self.store.delete_group(group_id)
                else (errors.GROUP_ID_NOT_FOUND)
            )
        except MetadataError:
            return errors.COORDINATOR_NOT_AVAILABLE

    def _count_rebalance(self) -> None:
        self.rebalances_total += 1
        metrics.GROUP_REBALANCES.inc()

    # -- observability -----------------------------------------------------------------------
    def summary(self) -> dict[str, object]:
        by_state: dict[str, int] = {s.value: 0 for s in GroupState if s is not GroupState.DEAD}
        members = 0
        for group in self._groups.values():
            if group.state is not GroupState.DEAD:
                by_state[group.state.value] += 1
                members += len(group.members)
        return {
            "loaded_by_state": by_state,
            "members": members,
            "rebalances_total": self.rebalances_total,
        }


def _resolver(future: asyncio.Future[R]) -> Callable[[R], None]:
    def resolve(result: R) -> None:
        if not future.done():  # the client may have gone away meanwhile
            future.set_result(result)

    return resolve
