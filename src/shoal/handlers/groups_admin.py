"""Group administration: ListGroups, DescribeGroups, DeleteGroups.

Versions served: ListGroups 0-5, DescribeGroups 0-6, DeleteGroups 0-2.
- ListGroups v3: flexible; v4: states filter (KIP-518); v5: types filter (KIP-848), every
  group here is of type "classic".
- DescribeGroups v3: authorized operations (not computed); v4: group instance id; v5: flexible;
  v6: an unknown group gets GROUP_ID_NOT_FOUND (before it, it is described as Dead).
- DeleteGroups v2: flexible.
"""

from __future__ import annotations

from typing import Any

from kio.schema.delete_groups.v2.response import DeletableGroupResult, DeleteGroupsResponse
from kio.schema.describe_groups.v6.response import (
    DescribedGroup,
    DescribedGroupMember,
    DescribeGroupsResponse,
)
from kio.schema.list_groups.v5.response import ListedGroup, ListGroupsResponse

from shoal.handlers.base import RequestContext, api
from shoal.handlers.services import Services
from shoal.meta.store import MetadataError
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import UNKNOWN_AUTHORIZED_OPERATIONS, ZERO_THROTTLE, error

GROUP_TYPE = "classic"  # the KIP-848 type name of groups using the classic protocol


@api(ApiKey.LIST_GROUPS, 0, 5)
async def handle_list_groups(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    states = {s.lower() for s in getattr(req, "states_filter", ())}
    types = {t.lower() for t in getattr(req, "types_filter", ())}
    code = errors.NONE
    try:
        listed = await svc.groups.list_groups()
    except MetadataError:
        listed, code = [], errors.COORDINATOR_NOT_AVAILABLE
    groups = tuple(
        msgs.make(
            ListedGroup,
            group_id=gid,
            protocol_type=ptype,
            group_state=state,
            group_type=GROUP_TYPE,
        )
        for gid, ptype, state in listed
        if (not states or state.lower() in states) and (not types or GROUP_TYPE in types)
    )
    return msgs.make(
        ListGroupsResponse,
        throttle_time=ZERO_THROTTLE,
        error_code=error(code),
        groups=groups,
    )


@api(ApiKey.DESCRIBE_GROUPS, 0, 6)
async def handle_describe_groups(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    out = []
    for group_id in req.groups:
        code, view = await svc.groups.describe_group(group_id)
        if code == errors.GROUP_ID_NOT_FOUND and ctx.api_version < 6:
            code = errors.NONE  # before v6 an unknown group is described as Dead
        members: tuple[Any, ...] = ()
        if view is not None:
            members = tuple(
                msgs.make(
                    DescribedGroupMember,
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    member_metadata=m.metadata,
                    member_assignment=m.assignment,
                )
                for m in view.members
            )
        out.append(
            msgs.make(
                DescribedGroup,
                error_code=error(code),
                error_message=None if code == errors.NONE else errors.error_name(code),
                group_id=group_id,
                group_state=view.state if view else "Dead",
                protocol_type=view.protocol_type if view else "",
                protocol_data=view.protocol_data if view else "",
                members=members,
                authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
            )
        )
    return msgs.make(DescribeGroupsResponse, throttle_time=ZERO_THROTTLE, groups=tuple(out))


@api(ApiKey.DELETE_GROUPS, 0, 2)
async def handle_delete_groups(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    results = []
    for group_id in req.groups_names:
        code = await svc.groups.delete_group(group_id)
        results.append(msgs.make(DeletableGroupResult, group_id=group_id, error_code=error(code)))
    return msgs.make(DeleteGroupsResponse, throttle_time=ZERO_THROTTLE, results=tuple(results))
