"""Rebalancing a group: preparing it, completing the join phase (choosing leader and protocol),
answering the members that wait, and the deadlines of both phases (`tick`)."""

from __future__ import annotations

from shoal.groups.group_core import CR, DEAD, PR, ST, E, GroupCore
from shoal.groups.model import JoinedMember, JoinResult, Member, Protocols, SyncResult
from shoal.protocol import errors


class GroupRebalance(GroupCore):
    # -- answers to waiting members ------------------------------------------------------------
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

    def _remove_and_update(self, member_id: str) -> None:
        self._remove(member_id)
        if self.state in (CR, ST):
            self._maybe_prepare_rebalance()
            self._try_complete_join()
        elif self.state is PR:
            self._try_complete_join()

    # -- time ----------------------------------------------------------------------------------
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


def _ignore(code: int) -> None:
    """Persisting an emptied group is best effort: the next generation stores it again."""
