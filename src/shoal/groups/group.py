"""One consumer group's classic-protocol state machine (Kafka's GroupCoordinator semantics).

Pure and single-threaded: no asyncio, no I/O. Time comes from an injected clock (ms); the group
asks its owner to call `tick(now)` no later than a given instant through the injected `wake`
callable, and hands group metadata to the injected `persist` callable, which reports the outcome
later through a callback. JoinGroup and SyncGroup answers are delivered through per-request
callbacks because they wait for other members; the rest answer at once.

States: Empty -> PreparingRebalance -> CompletingRebalance -> Stable, back to PreparingRebalance
on any membership or subscription change, to Empty when the last member goes, Dead on deletion.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from shoal.groups.model import (
    NEW_MEMBER_JOIN_TIMEOUT_MS,
    UNKNOWN_MEMBER_ID,
    GroupConfig,
    GroupState,
    GroupView,
    JoinedMember,
    JoinReply,
    JoinRequest,
    JoinResult,
    Member,
    MemberView,
    Protocols,
    SyncReply,
    SyncResult,
)
from shoal.meta.group_store import StoredGroup, StoredMember
from shoal.protocol import errors

Clock = Callable[[], int]
Wake = Callable[[str, int], None]
PersistDone = Callable[[int], None]
Persist = Callable[[StoredGroup, PersistDone], None]

E, PR, CR, ST, DEAD = (
    GroupState.EMPTY,
    GroupState.PREPARING_REBALANCE,
    GroupState.COMPLETING_REBALANCE,
    GroupState.STABLE,
    GroupState.DEAD,
)


class Group:
    def __init__(
        self,
        group_id: str,
        config: GroupConfig,
        clock: Clock,
        wake: Wake,
        persist: Persist,
        on_rebalance: Callable[[], None] | None = None,
    ) -> None:
        self.group_id = group_id
        self.config = config
        self._clock = clock
        self._wake = wake
        self._persist = persist
        self._on_rebalance = on_rebalance
        self.state = E
        self.generation = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader: str | None = None
        self.members: dict[str, Member] = {}
        self.static_members: dict[str, str] = {}  # group.instance.id -> member id
        self.pending_members: dict[str, int] = {}  # KIP-394 member id -> expiry
        self.pending_sync: set[str] = set()
        self.join_deadline: int | None = None
        self.sync_deadline: int | None = None
        self._initial_join = False
        self._initial_remaining_ms = 0
        self._new_member_added = False
        self._woken_at: int | None = None
        self.rebalances = 0

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_stored(
        cls,
        stored: StoredGroup,
        config: GroupConfig,
        clock: Clock,
        wake: Wake,
        persist: Persist,
        on_rebalance: Callable[[], None] | None = None,
    ) -> Group:
        """A group reloaded after a restart (or a coordinator move): Stable with its stored
        members, whose session timers start now, as Kafka does when it loads a group."""
        group = cls(stored.group_id, config, clock, wake, persist, on_rebalance)
        now = clock()
        group.generation = stored.generation
        group.protocol_type = stored.protocol_type or None
        group.protocol_name = stored.protocol_name
        for m in stored.members:
            group.members[m.member_id] = Member(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                session_timeout_ms=m.session_timeout_ms,
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                protocol_type=stored.protocol_type,
                protocols=((stored.protocol_name or "", m.subscription),),
                assignment=m.assignment,
                deadline_ms=now + m.session_timeout_ms,
            )
            if m.group_instance_id is not None:
                group.static_members[m.group_instance_id] = m.member_id
        if group.members:
            group.state = ST
            group.leader = (
                stored.leader if stored.leader in group.members else next(iter(group.members))
            )
        group._reschedule()
        return group

    def to_stored(self, assignments: dict[str, bytes] | None = None) -> StoredGroup:
        members = tuple(
            StoredMember(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                session_timeout_ms=m.session_timeout_ms,
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                subscription=m.metadata(self.protocol_name),
                assignment=(assignments or {}).get(m.member_id, m.assignment),
            )
            for m in self.members.values()
        )
        return StoredGroup(
            group_id=self.group_id,
            protocol_type=self.protocol_type or "",
            generation=self.generation,
            protocol_name=self.protocol_name,
            leader=self.leader,
            state="Stable" if members else "Empty",
            members=members,
            updated_at_ms=0,  # the store stamps wall-clock time
        )

    # -- JoinGroup -----------------------------------------------------------------------------
    def join(self, req: JoinRequest, reply: JoinReply) -> None:
        cfg = self.config
        if not cfg.min_session_timeout_ms <= req.session_timeout_ms <= cfg.max_session_timeout_ms:
            reply(JoinResult(errors.INVALID_SESSION_TIMEOUT, req.member_id))
        elif self.state is DEAD:
            reply(JoinResult(errors.COORDINATOR_NOT_AVAILABLE, req.member_id))
        elif not self._supports(req.protocol_type, req.protocols):
            reply(JoinResult(errors.INCONSISTENT_GROUP_PROTOCOL, req.member_id))
        elif req.member_id == UNKNOWN_MEMBER_ID:
            self._join_new(req, reply)
        else:
            self._join_known(req, reply)
        self._reschedule()

    def _join_new(self, req: JoinRequest, reply: JoinReply) -> None:
        new_id = f"{req.client_id}-{uuid.uuid4()}"
        instance = req.group_instance_id
        if instance is not None and instance in self.static_members:
            self._replace_static_member(self.static_members[instance], new_id, req, reply)
        elif len(self.members) + len(self.pending_members) >= self.config.max_size:
            reply(JoinResult(errors.GROUP_MAX_SIZE_REACHED, UNKNOWN_MEMBER_ID))
        elif instance is None and req.require_known_member_id:
            # KIP-394: hand out the id first, so a client that retries after losing the
            # response does not leave a ghost member behind.
            self.pending_members[new_id] = self._clock() + req.session_timeout_ms
            reply(JoinResult(errors.MEMBER_ID_REQUIRED, new_id))
        else:
            self._add_member_and_rebalance(new_id, req, reply)

    def _join_known(self, req: JoinRequest, reply: JoinReply) -> None:
        member_id = req.member_id
        if member_id in self.pending_members:
            del self.pending_members[member_id]
            self._add_member_and_rebalance(member_id, req, reply)
            return
        instance = req.group_instance_id
        if self._fenced(instance, member_id):
            reply(JoinResult(errors.FENCED_INSTANCE_ID, member_id))
            return
        member = self.members.get(member_id)
        if member is None or (instance is not None and instance not in self.static_members):
            reply(JoinResult(errors.UNKNOWN_MEMBER_ID, member_id))
            return
        if self.state is PR:
            self._update_member_and_rebalance(member, req, reply)
        elif self.state is CR:
            if member.protocols == req.protocols:
                # A retried join of the generation being completed: answer it again.
                self._refresh(member)
                reply(self._join_result(member))
            else:
                self._update_member_and_rebalance(member, req, reply)
        elif self.state is ST:
            if member_id == self.leader or member.protocols != req.protocols:
                self._update_member_and_rebalance(member, req, reply)
            else:
                self._refresh(member)
                reply(self._join_result(member, members=False))
        else:
            reply(JoinResult(errors.UNKNOWN_MEMBER_ID, member_id))

    def _replace_static_member(
        self, old_id: str, new_id: str, req: JoinRequest, reply: JoinReply
    ) -> None:
        """KIP-345: a static member restarting under its instance id takes over the old
        member's place (and assignment) without a rebalance when its subscription is the same."""
        member = self.members.pop(old_id)
        if member.join_reply is not None:
            member.join_reply(JoinResult(errors.FENCED_INSTANCE_ID, old_id))
            member.join_reply = None
        if member.sync_reply is not None:
            member.sync_reply(SyncResult(errors.FENCED_INSTANCE_ID))
            member.sync_reply = None
        member.member_id = new_id
        member.client_id, member.client_host = req.client_id, req.client_host
        member.session_timeout_ms = req.session_timeout_ms
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.protocols = req.protocols
        self.members[new_id] = member
        assert req.group_instance_id is not None
        self.static_members[req.group_instance_id] = new_id
        if self.leader == old_id:
            self.leader = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        if self.state is ST:
            if self._select_protocol() == self.protocol_name:
                self._refresh(member)
                is_leader = new_id == self.leader
                result = self._join_result(member, members=is_leader)
                result = JoinResult(
                    result.error,
                    result.member_id,
                    result.generation,
                    result.protocol_type,
                    result.protocol_name,
                    result.leader,
                    result.members,
                    skip_assignment=is_leader,
                )

                def stored(code: int) -> None:
                    reply(result if code == errors.NONE else JoinResult(code, new_id))

                self._persist(self.to_stored(), stored)
            else:
                member.join_reply = reply
                self._maybe_prepare_rebalance()
        elif self.state is CR:
            member.join_reply = reply
            self._maybe_prepare_rebalance()
        else:
            member.join_reply = reply
            self._try_complete_join()

    def _add_member_and_rebalance(self, member_id: str, req: JoinRequest, reply: JoinReply) -> None:
        now = self._clock()
        member = Member(
            member_id=member_id,
            group_instance_id=req.group_instance_id,
            client_id=req.client_id,
            client_host=req.client_host,
            session_timeout_ms=req.session_timeout_ms,
            rebalance_timeout_ms=req.rebalance_timeout_ms,
            protocol_type=req.protocol_type,
            protocols=req.protocols,
            deadline_ms=now + NEW_MEMBER_JOIN_TIMEOUT_MS,
            is_new=True,
            join_reply=reply,
        )
        if not self.members:
            self.protocol_type = req.protocol_type
        self.members[member_id] = member
        if req.group_instance_id is not None:
            self.static_members[req.group_instance_id] = member_id
        if self.leader is None:
            self.leader = member_id
        if self.state is PR and self._initial_join:
            self._new_member_added = True
        self._maybe_prepare_rebalance()
        self._try_complete_join()

    def _update_member_and_rebalance(
        self, member: Member, req: JoinRequest, reply: JoinReply
    ) -> None:
        if member.join_reply is not None:
            member.join_reply(JoinResult(errors.REBALANCE_IN_PROGRESS, member.member_id))
        member.protocols = req.protocols
        member.session_timeout_ms = req.session_timeout_ms
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.client_id, member.client_host = req.client_id, req.client_host
        member.join_reply = reply
        self._maybe_prepare_rebalance()
        self._try_complete_join()

    def _join_result(self, member: Member, members: bool | None = None) -> JoinResult:
        is_leader = member.member_id == self.leader
        include = is_leader if members is None else members
        return JoinResult(
            error=errors.NONE,
            member_id=member.member_id,
            generation=self.generation,
            protocol_type=self.protocol_type,
            protocol_name=self.protocol_name,
            leader=self.leader or "",
            members=self._member_metadata() if include else (),
        )

    def _member_metadata(self) -> tuple[JoinedMember, ...]:
        return tuple(
            JoinedMember(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
            for m in self.members.values()
        )

    # -- SyncGroup -----------------------------------------------------------------------------
    def sync(
        self,
        member_id: str,
        group_instance_id: str | None,
        generation: int,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
        reply: SyncReply,
    ) -> None:
        code = self._check_member(member_id, group_instance_id, generation)
        if code == errors.NONE and (
            (protocol_type is not None and protocol_type != self.protocol_type)
            or (protocol_name is not None and protocol_name != self.protocol_name)
        ):
            code = errors.INCONSISTENT_GROUP_PROTOCOL
        if code != errors.NONE:
            reply(SyncResult(code))
            return
        member = self.members[member_id]
        if self.state is E:
            reply(SyncResult(errors.UNKNOWN_MEMBER_ID))
        elif self.state is PR:
            reply(SyncResult(errors.REBALANCE_IN_PROGRESS))
        elif self.state is CR:
            member.sync_reply = reply
            self.pending_sync.discard(member_id)
            if member_id == self.leader:
                full = {mid: assignments.get(mid, b"") for mid in self.members}
                gen = self.generation
                self._persist(
                    self.to_stored(full), lambda code: self._assignment_stored(gen, full, code)
                )
        else:
            self.pending_sync.discard(member_id)
            self._refresh(member)
            reply(self._sync_result(member))
        self._reschedule()

    def _assignment_stored(self, generation: int, assignments: dict[str, bytes], code: int) -> None:
        if self.state is not CR or self.generation != generation:
            return  # a newer rebalance started meanwhile; its members were told already
        if code != errors.NONE:
            self._reset_and_propagate(code)
            self._maybe_prepare_rebalance()
        else:
            for mid, member in self.members.items():
                member.assignment = assignments.get(mid, b"")
            self._propagate_assignment()
            self.state = ST
        self._reschedule()

    def _sync_result(self, member: Member) -> SyncResult:
        return SyncResult(errors.NONE, member.assignment, self.protocol_type, self.protocol_name)

    def _propagate_assignment(self, code: int = errors.NONE) -> None:
        for member in self.members.values():
            if member.sync_reply is not None:
                reply, member.sync_reply = member.sync_reply, None
                reply(self._sync_result(member) if code == errors.NONE else SyncResult(code))
                self._refresh(member)

    def _reset_and_propagate(self, code: int) -> None:
        for member in self.members.values():
            member.assignment = b""
        self._propagate_assignment(code)

    # -- Heartbeat, LeaveGroup, OffsetCommit checks ---------------------------------------------
    def heartbeat(self, member_id: str, group_instance_id: str | None, generation: int) -> int:
        code = self._check_member(member_id, group_instance_id, generation)
        if code != errors.NONE:
            return code
        member = self.members[member_id]
        if self.state is E:
            return errors.UNKNOWN_MEMBER_ID
        self._refresh(member)
        return errors.REBALANCE_IN_PROGRESS if self.state is PR else errors.NONE

    def leave(self, identities: Iterable[tuple[str, str | None]]) -> tuple[int, list[int]]:
        """LeaveGroup (batched since v3): (top-level error, per-member errors)."""
        items = list(identities)
        if self.state is DEAD:
            return errors.COORDINATOR_NOT_AVAILABLE, [errors.COORDINATOR_NOT_AVAILABLE] * len(items)
        out = [self._leave_one(mid, iid) for mid, iid in items]
        self._reschedule()
        return errors.NONE, out

    def _leave_one(self, member_id: str, instance: str | None) -> int:
        if instance is not None:
            current = self.static_members.get(instance)
            if current is None:
                return errors.UNKNOWN_MEMBER_ID
            if member_id != UNKNOWN_MEMBER_ID and current != member_id:
                return errors.FENCED_INSTANCE_ID
            self._remove_and_update(current)
            return errors.NONE
        if member_id in self.pending_members:
            del self.pending_members[member_id]
            self._try_complete_join()
            return errors.NONE
        if member_id not in self.members:
            return errors.UNKNOWN_MEMBER_ID
        self._remove_and_update(member_id)
        return errors.NONE

    def check_commit(self, member_id: str, group_instance_id: str | None, generation: int) -> int:
        """OffsetCommit's membership check; a valid commit also counts as a heartbeat."""
        if self.state is DEAD:
            return errors.COORDINATOR_NOT_AVAILABLE
        if self._fenced(group_instance_id, member_id):
            return errors.FENCED_INSTANCE_ID
        if generation < 0 and self.state is E:
            return errors.NONE  # a group that only stores offsets (admin tools, assign())
        if self.state is CR:
            return errors.REBALANCE_IN_PROGRESS
        member = self.members.get(member_id)
        if member is None:
            return errors.UNKNOWN_MEMBER_ID
        if generation != self.generation:
            return errors.ILLEGAL_GENERATION
        self._refresh(member)
        return errors.NONE

    def _check_member(self, member_id: str, group_instance_id: str | None, generation: int) -> int:
        if self.state is DEAD:
            return errors.COORDINATOR_NOT_AVAILABLE
        if self._fenced(group_instance_id, member_id):
            return errors.FENCED_INSTANCE_ID
        if member_id not in self.members:
            return errors.UNKNOWN_MEMBER_ID
        if generation != self.generation:
            return errors.ILLEGAL_GENERATION
        return errors.NONE

    def _fenced(self, instance: str | None, member_id: str) -> bool:
        if instance is None:
            return False
        current = self.static_members.get(instance)
        return current is not None and current != member_id

    # -- rebalancing ---------------------------------------------------------------------------
    def _maybe_prepare_rebalance(self) -> None:
        if self.state in (E, CR, ST):
            self._prepare_rebalance()

    def _prepare_rebalance(self) -> None:
        now = self._clock()
        if self.state is CR:
            self._reset_and_propagate(errors.REBALANCE_IN_PROGRESS)
        self.pending_sync.clear()
        self.sync_deadline = None
        timeout = self._rebalance_timeout()
        if self.state is E:
            delay = min(self.config.initial_rebalance_delay_ms, timeout)
            self._initial_join = True
            self._new_member_added = False
            self._initial_remaining_ms = max(timeout - delay, 0)
            self.join_deadline = now + delay
        else:
            self._initial_join = False
            self.join_deadline = now + timeout
        self.state = PR
        self.rebalances += 1
        if self._on_rebalance is not None:
            self._on_rebalance()

    def _rebalance_timeout(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def _all_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def _try_complete_join(self) -> None:
        if self.state is PR and not self._initial_join and self._all_joined():
            self._complete_join()

    def _complete_join(self) -> None:
        now = self._clock()
        for mid in [mid for mid, m in self.members.items() if not m.awaiting_join]:
            # Static members keep their place; their session timer decides.
            if self.members[mid].group_instance_id is None:
                self._remove(mid)
        self._initial_join = False
        self.join_deadline = None
        if not self.members:
            self.generation += 1
            self.protocol_name = None
            self.state = E
            self.leader = None
            self._persist(self.to_stored(), _ignore)
            return
        joined = [m for m in self.members.values() if m.awaiting_join]
        if not joined:
            # Only absent static members are left: wait until they return or time out.
            self.join_deadline = now + self._rebalance_timeout()
            return
        if self.leader not in self.members or not self.members[self.leader].awaiting_join:
            self.leader = joined[0].member_id
        self.generation += 1
        self.protocol_name = self._select_protocol()
        self.state = CR
        for member in self.members.values():
            member.is_new = False
            member.assignment = b""
            if member.join_reply is not None:
                reply, member.join_reply = member.join_reply, None
                self._refresh(member)
                reply(self._join_result(member))
        self.pending_sync = set(self.members)
        self.sync_deadline = now + self._rebalance_timeout()

    def _select_protocol(self) -> str | None:
        """Each member votes for its most preferred protocol that every member supports."""
        candidates = self._candidates()
        if not candidates:
            return None
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = next(n for n in member.protocol_names() if n in candidates)
            votes[choice] = votes.get(choice, 0) + 1
        return max(votes, key=lambda name: votes[name])  # ties: first voted wins

    def _candidates(self) -> set[str]:
        sets = [set(m.protocol_names()) for m in self.members.values()]
        return set.intersection(*sets) if sets else set()

    def _supports(self, protocol_type: str, protocols: Protocols) -> bool:
        names = [name for name, _ in protocols]
        if not self.members:
            return bool(protocol_type) and bool(names)
        return protocol_type == self.protocol_type and any(n in self._candidates() for n in names)

    # -- removal and time ------------------------------------------------------------------------
    def _remove(self, member_id: str) -> None:
        member = self.members.pop(member_id)
        if member.join_reply is not None:
            member.join_reply(JoinResult(errors.UNKNOWN_MEMBER_ID, member_id))
        if member.sync_reply is not None:
            member.sync_reply(SyncResult(errors.UNKNOWN_MEMBER_ID))
        if member.group_instance_id is not None:
            self.static_members.pop(member.group_instance_id, None)
        self.pending_sync.discard(member_id)
        if self.leader == member_id:
            self.leader = next(iter(self.members), None)

    def _remove_and_update(self, member_id: str) -> None:
        self._remove(member_id)
        if self.state in (CR, ST):
            self._maybe_prepare_rebalance()
            self._try_complete_join()
        elif self.state is PR:
            self._try_complete_join()

    def _refresh(self, member: Member) -> None:
        member.deadline_ms = self._clock() + member.session_timeout_ms

    def tick(self, now: int | None = None) -> None:
        """Apply every deadline that has passed: pending members, the join phase (initial
        delay or rebalance timeout), the sync phase, members' sessions."""
        now = self._clock() if now is None else now
        self._woken_at = None
        if self.state is DEAD:
            return
        for mid in [mid for mid, at in self.pending_members.items() if at <= now]:
            del self.pending_members[mid]
            self._try_complete_join()
        if self.state is PR and self.join_deadline is not None and self.join_deadline <= now:
            if self._initial_join and self._new_member_added and self._initial_remaining_ms > 0:
                # More members arrived during the delay: wait once more (bounded by the
                # rebalance timeout), as Kafka's InitialDelayedJoin does.
                delay = min(self.config.initial_rebalance_delay_ms, self._initial_remaining_ms)
                self._initial_remaining_ms -= delay
                self._new_member_added = False
                self.join_deadline = now + delay
            else:
                self._complete_join()
        if self.state in (CR, ST) and self.sync_deadline is not None and self.sync_deadline <= now:
            self.sync_deadline = None
            missing = [mid for mid in self.pending_sync if mid in self.members]
            self.pending_sync.clear()
            if missing:
                for mid in missing:
                    self._remove(mid)
                self._prepare_rebalance()
                self._try_complete_join()
        for mid in [mid for mid, m in self.members.items() if self._expired(m, now)]:
            if mid in self.members:
                self._remove_and_update(mid)
        self._reschedule()

    @staticmethod
    def _expired(member: Member, now: int) -> bool:
        if not member.is_new and (member.awaiting_join or member.sync_reply is not None):
            return False  # waiting in a rebalance counts as alive; the phase timeouts bound it
        return member.deadline_ms <= now

    def next_deadline(self) -> int | None:
        times: list[int] = list(self.pending_members.values())
        if self.state is PR and self.join_deadline is not None:
            times.append(self.join_deadline)
        if self.state in (CR, ST) and self.sync_deadline is not None:
            times.append(self.sync_deadline)
        times.extend(
            m.deadline_ms
            for m in self.members.values()
            if m.is_new or not (m.awaiting_join or m.sync_reply is not None)
        )
        return min(times) if times else None

    def _reschedule(self) -> None:
        at = self.next_deadline()
        if at is not None and (self._woken_at is None or at < self._woken_at):
            self._woken_at = at
            self._wake(self.group_id, at)

    # -- admin -----------------------------------------------------------------------------------
    def mark_dead(self) -> None:
        """Deleted, or no longer owned by this agent: answer whoever waits and stop."""
        for member in self.members.values():
            if member.join_reply is not None:
                member.join_reply(JoinResult(errors.NOT_COORDINATOR, member.member_id))
                member.join_reply = None
            if member.sync_reply is not None:
                member.sync_reply(SyncResult(errors.NOT_COORDINATOR))
                member.sync_reply = None
        self.state = DEAD

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to (consumer protocol), None when unknown."""
        from shoal.groups.consumer_protocol import subscription_topics

        if self.protocol_type != "consumer":
            return None
        topics: set[str] = set()
        for member in self.members.values():
            found = subscription_topics(member.metadata(self.protocol_name))
            if found is None:
                return None
            topics |= found
        return topics

    def view(self) -> GroupView:
        stable = self.state is ST
        members = tuple(
            MemberView(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                metadata=m.metadata(self.protocol_name) if stable else b"",
                assignment=m.assignment if stable else b"",
            )
            for m in self.members.values()
        )
        return GroupView(
            group_id=self.group_id,
            state=self.state.value,
            protocol_type=self.protocol_type or "",
            protocol_data=(self.protocol_name or "") if stable else "",
            members=members,
            generation=self.generation,
            leader=self.leader,
        )


def _ignore(code: int) -> None:
    """Persisting an emptied group is best effort: the next generation stores it again."""
