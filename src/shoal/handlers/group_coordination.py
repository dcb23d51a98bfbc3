"""The classic group protocol: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup.

The handlers translate between kio's per-version messages and `GroupCoordinator`; every
decision is the coordinator's (groups/). ConsumerGroupHeartbeat (KIP-848) is not served.

Versions served: FindCoordinator 0-6, JoinGroup 0-9, SyncGroup 0-5, Heartbeat 0-4,
LeaveGroup 0-5.
- FindCoordinator v1: key type (group or transaction), error message; v3: flexible; v4: several
  keys per request (KIP-699); v5-6: same shape (transaction and share-group keys).
- JoinGroup v1: rebalance timeout; v4: member id required (MEMBER_ID_REQUIRED, KIP-394);
  v5: group instance id (static membership, KIP-345); v6: flexible; v7: protocol type in the
  answer; v8: a reason (KIP-800, not kept); v9: skip_assignment (always false here).
- SyncGroup v3: group instance id; v4: flexible; v5: protocol type and name checked.
- Heartbeat v3: group instance id; v4: flexible.
- LeaveGroup v3: several members per request (batch leave, KIP-345); v4: flexible;
  v5: a reason per member (not kept).
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.find_coordinator.v6.response import Coordinator, FindCoordinatorResponse
from kio.schema.heartbeat.v4.response import HeartbeatResponse
from kio.schema.join_group.v9.response import JoinGroupResponse, JoinGroupResponseMember
from kio.schema.leave_group.v5.response import LeaveGroupResponse, MemberResponse
from kio.schema.sync_group.v5.response import SyncGroupResponse

from shoal.groups.model import JoinRequest
from shoal.handlers.base import RequestContext, api
from shoal.handlers.services import Services
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import ZERO_THROTTLE, error

GROUP_KEY, TRANSACTION_KEY = 0, 1
_ONE_MS = datetime.timedelta(milliseconds=1)


def ms(value: datetime.timedelta) -> int:
    return value // _ONE_MS


def client_host(ctx: RequestContext) -> str:
    # Kafka shows the address as InetAddress.toString does: "/127.0.0.1".
    return "/" + ctx.peer.rsplit(":", 1)[0]


@api(ApiKey.FIND_COORDINATOR, 0, 6)
async def handle_find_coordinator(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    key_type = int(getattr(req, "key_type", GROUP_KEY))
    keys = list(req.coordinator_keys) if ctx.api_version >= 4 else [req.key]
    found = []
    for key in keys:
        node = None
        code = errors.NONE
        if key_type not in (GROUP_KEY, TRANSACTION_KEY):
            code = errors.INVALID_REQUEST
        else:
            node = svc.groups.coordinator_for(key)
            if node is None:
                code = errors.COORDINATOR_NOT_AVAILABLE
        found.append(
            dict(
                key=key,
                node_id=node.node_id if node else -1,
                host=node.host if node else "",
                port=node.port if node else -1,
                error_code=error(code),
                error_message=None if code == errors.NONE else errors.error_name(code),
            )
        )
    if ctx.api_version >= 4:
        return msgs.make(
            FindCoordinatorResponse,
            throttle_time=ZERO_THROTTLE,
            coordinators=tuple(msgs.make(Coordinator, **f) for f in found),
        )
    # v0-3 answer one key, and name no key in the answer.
    only = {k: v for k, v in found[0].items() if k != "key"}
    return msgs.make(FindCoordinatorResponse, throttle_time=ZERO_THROTTLE, **only)


@api(ApiKey.JOIN_GROUP, 0, 9)
async def handle_join_group(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    session_ms = ms(req.session_timeout)
    rebalance = getattr(req, "rebalance_timeout", None)
    # v0 has no rebalance timeout: Kafka uses the session timeout for it.
    rebalance_ms = session_ms if rebalance is None or ms(rebalance) < 0 else ms(rebalance)
    result = await svc.groups.join(
        req.group_id,
        JoinRequest(
            member_id=req.member_id,
            group_instance_id=getattr(req, "group_instance_id", None),
            client_id=ctx.client_id or "",
            client_host=client_host(ctx),
            session_timeout_ms=session_ms,
            rebalance_timeout_ms=rebalance_ms,
            protocol_type=req.protocol_type,
            protocols=tuple((p.name, bytes(p.metadata)) for p in req.protocols),
            require_known_member_id=ctx.api_version >= 4,
        ),
    )
    members = tuple(
        msgs.make(
            JoinGroupResponseMember,
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            metadata=m.metadata,
        )
        for m in result.members
    )
    protocol_name = result.protocol_name
    if protocol_name is None and ctx.api_version < 7:
        protocol_name = ""  # non-nullable before v7
    return msgs.make(
        JoinGroupResponse,
        throttle_time=ZERO_THROTTLE,
        error_code=error(result.error),
        generation_id=result.generation,
        protocol_type=result.protocol_type,
        protocol_name=protocol_name,
        leader=result.leader,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=members,
    )


@api(ApiKey.SYNC_GROUP, 0, 5)
async def handle_sync_group(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    result = await svc.groups.sync(
        req.group_id,
        req.member_id,
        getattr(req, "group_instance_id", None),
        int(req.generation_id),
        getattr(req, "protocol_type", None),
        getattr(req, "protocol_name", None),
        {a.member_id: bytes(a.assignment) for a in req.assignments},
    )
    return msgs.make(
        SyncGroupResponse,
        throttle_time=ZERO_THROTTLE,
        error_code=error(result.error),
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )


@api(ApiKey.HEARTBEAT, 0, 4)
async def handle_heartbeat(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    code = await svc.groups.heartbeat(
        req.group_id,
        req.member_id,
        getattr(req, "group_instance_id", None),
        int(req.generation_id),
    )
    return msgs.make(HeartbeatResponse, throttle_time=ZERO_THROTTLE, error_code=error(code))


@api(ApiKey.LEAVE_GROUP, 0, 5)
async def handle_leave_group(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    if ctx.api_version >= 3:
        identities = [(m.member_id, m.group_instance_id) for m in req.members]
    else:
        identities = [(req.member_id, None)]
    top, per_member = await svc.groups.leave(req.group_id, identities)
    if ctx.api_version < 3:
        # One member, no per-member list: its error is the answer.
        code = top if top != errors.NONE or not per_member else per_member[0]
        return msgs.make(LeaveGroupResponse, throttle_time=ZERO_THROTTLE, error_code=error(code))
    members = tuple(
        msgs.make(
            MemberResponse,
            member_id=mid,
            group_instance_id=iid,
            error_code=error(code),
        )
        for (mid, iid), code in zip(identities, per_member, strict=False)
    )
    return msgs.make(
        LeaveGroupResponse,
        throttle_time=ZERO_THROTTLE,
        error_code=error(top),
        members=members if top == errors.NONE else (),
    )
