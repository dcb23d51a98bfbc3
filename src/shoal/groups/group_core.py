"""A consumer group's fields and the primitives every transition uses: its stored form, the
membership checks, member removal and the deadlines its owner is asked to wake it for.

`group_rebalance`, `group_join`, `group_sync` and `group_checks` build the transitions on this
class; `group.Group` puts them together.
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.groups.model import GroupConfig, GroupState, JoinResult, Member, SyncResult
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


class GroupCore:
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
        # The epoch the coordinator claimed the group with (`MetadataStore.claim_group`): its
        # writes carry it, and the store refuses them once another agent claimed the group.
        self.coordinator_epoch: int | None = None

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

    # -- membership checks ---------------------------------------------------------------------
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

    # -- removal and time ----------------------------------------------------------------------
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

    def _refresh(self, member: Member) -> None:
        member.deadline_ms = self._clock() + member.session_timeout_ms

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
