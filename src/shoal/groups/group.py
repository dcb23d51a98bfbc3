"""One consumer group's classic-protocol state machine (Kafka's GroupCoordinator semantics).

Pure and single-threaded: no asyncio, no I/O. Time comes from an injected clock (ms); the group
asks its owner to call `tick(now)` no later than a given instant through the injected `wake`
callable, and hands group metadata to the injected `persist` callable, which reports the outcome
later through a callback. JoinGroup and SyncGroup answers are delivered through per-request
callbacks because they wait for other members; the rest answer at once.

States: Empty -> PreparingRebalance -> CompletingRebalance -> Stable, back to PreparingRebalance
on any membership or subscription change, to Empty when the last member goes, Dead on deletion.

The transitions live in `group_core` (fields, checks, removal, deadlines), `group_rebalance`,
`group_join`, `group_sync` and `group_checks`; this class puts them together and adds loading,
deletion and the views.
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.groups.group_checks import GroupChecks
from shoal.groups.group_core import DEAD, ST, Clock, Persist, PersistDone, Wake
from shoal.groups.group_join import GroupJoin
from shoal.groups.group_sync import GroupSync
from shoal.groups.model import GroupConfig, GroupView, JoinResult, Member, MemberView, SyncResult
from shoal.meta.group_store import StoredGroup
from shoal.protocol import errors

# PersistDone and the callable types are imported from here by the coordinator and tests.
__all__ = ["Clock", "Group", "Persist", "PersistDone", "Wake"]


class Group(GroupJoin, GroupSync, GroupChecks):
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

    # -- admin ---------------------------------------------------------------------------------
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
