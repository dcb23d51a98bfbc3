"""InitProducerId: producer ids and epochs come from the metadata store.

Idempotence is on by default in current clients, so every producer starts here.
"""

from __future__ import annotations

from typing import Any

from shoal.handlers.adapt import ZERO_THROTTLE, build, error, response_module
from shoal.handlers.base import RequestContext, api
from shoal.handlers.services import Services
from shoal.meta.store import MetadataError, ProducerFencedError
from shoal.protocol import errors


@api(22, "InitProducerId", 0, 6)
async def handle_init_producer_id(svc: Services, ctx: RequestContext, req: Any) -> Any:
    module = response_module(22, ctx.api_version)
    producer_id = int(getattr(req, "producer_id", -1))
    producer_epoch = int(getattr(req, "producer_epoch", -1))
    code = errors.NONE
    try:
        pid, epoch = await svc.meta.init_producer(
            req.transactional_id, producer_id, producer_epoch
        )
    except ProducerFencedError:
        pid, epoch, code = -1, -1, errors.PRODUCER_FENCED
    except MetadataError:
        pid, epoch, code = -1, -1, errors.COORDINATOR_NOT_AVAILABLE  # retriable
    return build(
        module,
        "InitProducerIdResponse",
        throttle_time=ZERO_THROTTLE,
        error_code=error(code),
        producer_id=pid,
        producer_epoch=epoch,
    )
