"""InitProducerId: producer ids and epochs come from the metadata store.

Idempotence is on by default in current clients, so every producer starts here.

Versions served: 0-5, as Apache Kafka 4.4.
- v2: flexible.
- v3: producer id and epoch in the request, so a transactional producer can bump its epoch
  (KIP-360); without a transactional id the pair is ignored and a new id is allocated, as Kafka
  does (`meta/producers.py`).
- v6 (two-phase commit, KIP-939) is not served: Kafka 4.4 does not serve it either, and a
  client asking for 2PC must not get a plain InitProducerId.
"""

from __future__ import annotations

from typing import Any

from kio.schema.init_producer_id.v6.response import InitProducerIdResponse

from shoal.handlers.base import RequestContext, api
from shoal.handlers.services import Services
from shoal.meta.store import MetadataError, ProducerFencedError
from shoal.protocol import errors
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import ZERO_THROTTLE, error

# Kafka's transaction.max.timeout.ms default: a transactional producer asking for longer (or
# for none) is refused with INVALID_TRANSACTION_TIMEOUT before anything is allocated.
TRANSACTION_MAX_TIMEOUT_MS = 900_000


@api(ApiKey.INIT_PRODUCER_ID, 0, 5)
async def handle_init_producer_id(svc: Services, ctx: RequestContext, req: Any) -> Any:
    msgs = ctx.responses()
    producer_id = int(getattr(req, "producer_id", -1))
    producer_epoch = int(getattr(req, "producer_epoch", -1))
    code = errors.NONE
    timeout_ms = int(req.transaction_timeout.total_seconds() * 1000)
    if req.transactional_id is not None and not 0 < timeout_ms <= TRANSACTION_MAX_TIMEOUT_MS:
        return msgs.make(
            InitProducerIdResponse,
            throttle_time=ZERO_THROTTLE,
            error_code=error(errors.INVALID_TRANSACTION_TIMEOUT),
            producer_id=-1,
            producer_epoch=-1,
        )
    try:
        pid, epoch = await svc.meta.init_producer(req.transactional_id, producer_id, producer_epoch)
    except ProducerFencedError:
        pid, epoch, code = -1, -1, errors.PRODUCER_FENCED
    except MetadataError:
        pid, epoch, code = -1, -1, errors.COORDINATOR_NOT_AVAILABLE  # retriable
    return msgs.make(
        InitProducerIdResponse,
        throttle_time=ZERO_THROTTLE,
        error_code=error(code),
        producer_id=pid,
        producer_epoch=epoch,
    )
