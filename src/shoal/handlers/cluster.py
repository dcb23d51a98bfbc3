"""DescribeCluster: the cluster id, and this agent as broker and controller.

Shoal has no controller quorum; every agent can do what a controller does (topic changes go
through the metadata store), so each agent names itself. The broker list matches the one that
Metadata returns, so clients that bootstrap from either see the same cluster.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from shoal.handlers.adapt import ZERO_THROTTLE, build, response_module
from shoal.handlers.base import RequestContext, api
from shoal.handlers.services import Services

DESCRIBE_CLUSTER = 60
ENDPOINT_BROKERS = 1
ENDPOINT_CONTROLLERS = 2
# Kafka's "authorized operations were not requested / are not known" marker.
UNKNOWN_AUTHORIZED_OPERATIONS = -2147483648


@api(DESCRIBE_CLUSTER, "DescribeCluster", 0, 2)
async def handle_describe_cluster(svc: Services, ctx: RequestContext, req: Any) -> Any:
    module = response_module(DESCRIBE_CLUSTER, ctx.api_version)
    endpoint_type = int(getattr(req, "endpoint_type", ENDPOINT_BROKERS))
    if endpoint_type != ENDPOINT_BROKERS:
        # Brokers answer controller-endpoint requests this way; clients then ask a controller,
        # and Shoal has no separate controller listener.
        return build(
            module,
            "DescribeClusterResponse",
            throttle_time=ZERO_THROTTLE,
            error_code=ErrorCode.unsupported_endpoint_type,
            error_message="Shoal agents only serve the broker endpoint type.",
            endpoint_type=endpoint_type,
            cluster_id=svc.cluster_id,
            controller_id=-1,
            brokers=(),
            cluster_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
        )
    broker = build(
        module,
        "DescribeClusterBroker",
        broker_id=svc.node_id,
        host=svc.settings.advertised,
        port=svc.settings.kafka_port,
        rack=svc.settings.az,
        is_fenced=False,
    )
    return build(
        module,
        "DescribeClusterResponse",
        throttle_time=ZERO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=ENDPOINT_BROKERS,
        cluster_id=svc.cluster_id,
        controller_id=svc.node_id,
        brokers=(broker,),
        cluster_authorized_operations=UNKNOWN_AUTHORIZED_OPERATIONS,
    )
