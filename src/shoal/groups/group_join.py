"""JoinGroup: new, known, pending (KIP-394) and static (KIP-345) members joining a group."""

from __future__ import annotations

import uuid

from shoal.groups.group_core import CR, DEAD, PR, ST
from shoal.groups.group_rebalance import GroupRebalance
from shoal.groups.model import (
    NEW_MEMBER_JOIN_TIMEOUT_MS,
    UNKNOWN_MEMBER_ID,
    JoinReply,
    JoinRequest,
    JoinResult,
    Member,
    SyncResult,
)
from shoal.protocol import errors


class GroupJoin(GroupRebalance):
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
