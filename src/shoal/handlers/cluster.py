"""DescribeCluster: the cluster id, the live agents of the agent group as brokers, and this
agent as controller.

Shoal has no controller quorum; every agent can do what a controller does (topic changes go
through the metadata store), so each agent names itself. The broker list is every live agent
(admin tools want the whole cluster), as in Metadata, which picks leaders in the client's zone.

Versions served: 0-2 (flexible from v0).
- v1: endpoint type (brokers or controllers; controllers get UNSUPPORTED_ENDPOINT_TYPE).
- v2: include fenced brokers (no agent is ever fenced).
"""

from __future__ import annotations

from typing import Any

from kio.schema.describe_cluster.v2.response import DescribeClusterBroker, DescribeClusterResponse
from kio.schema.errors import ErrorCode

from shoal.handlers.base import RequestContext, api
from shoal.handlers.services import Services
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import UNKNOWN_AUTHORIZED_OPERATIONS, ZERO_THROTTLE

ENDPOINT_BROKERS = 1
ENDPOINT_CONTROLLERS = 2


@api(ApiKey.DESCRIBE_CLUSTER, 0, 2)
async def handle_describe_cluster(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    endpoint_type = int(getattr(req, "endpoint_type", ENDPOINT_BROKERS))
    if endpoint_type != ENDPOINT_BROKERS:
        # Brokers answer controller-endpoint requests this way; clients then ask a controller,
        # and Shoal has no separate controller listener.
        return msgs.make(
            DescribeClusterResponse,
            throttle_time=ZERO_THROTTLE,
            error_code=ErrorCode.unsupported_endpoint_type,
            error_message="Shoal agents only serve the broker endpoint type.",
            endpoint_type=endpoint_type,
            cluster_id=svc.cluster_id,
            controller_id=-1,
            brokers=(),
            cluster_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
        )
    view = svc.cluster
    brokers = tuple(
        msgs.make(
            DescribeClusterBroker,
            broker_id=a.node_id,
            host=a.host,
            port=a.kafka_port,
            rack=a.az,
            is_fenced=False,
        )
        for a in view.live()
    )
    return msgs.make(
        DescribeClusterResponse,
        throttle_time=ZERO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=ENDPOINT_BROKERS,
        cluster_id=svc.cluster_id,
        controller_id=view.me.node_id,
        brokers=brokers,
        cluster_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
    )
