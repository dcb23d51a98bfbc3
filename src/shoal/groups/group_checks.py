"""Heartbeat, LeaveGroup and OffsetCommit's membership check: answered at once, no waiting."""

from __future__ import annotations

from collections.abc import Iterable

from shoal.groups.group_core import CR, DEAD, PR, E
from shoal.groups.group_rebalance import GroupRebalance
from shoal.groups.model import UNKNOWN_MEMBER_ID
from shoal.protocol import errors


class GroupChecks(GroupRebalance):
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
