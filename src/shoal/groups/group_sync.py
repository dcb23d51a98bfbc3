"""SyncGroup: members wait for the leader's assignment, which is stored before it is handed out."""

from __future__ import annotations

from shoal.groups.group_core import CR, PR, ST, E
from shoal.groups.group_rebalance import GroupRebalance
from shoal.groups.model import SyncReply, SyncResult
from shoal.protocol import errors


class GroupSync(GroupRebalance):
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
