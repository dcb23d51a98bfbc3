"""One connection's Produce requests reach the writer in the order they were sent, even when
an earlier request is held up (a topic-cache miss): otherwise an idempotent producer's
pipelined batches would be committed out of sequence."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any, cast

from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import i32Timedelta

from shoal.handlers.base import RequestContext
from shoal.handlers.produce import handle_produce
from shoal.handlers.services import Services
from shoal.meta.store import BatchOutcome, TopicInfo
from shoal.settings import Settings
from shoal.write.writer import AppendItem
from tests.unit.batchgen import make_batch


class SlowFirstTopics:
    """The first lookup waits until released; later ones answer at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def get(self, name: str) -> TopicInfo | None:
        self.calls += 1
        if self.calls == 1:
            await self.release.wait()
        return TopicInfo(name, uuid.UUID(int=1), 1, {})


class RecordingWriter:
    def __init__(self) -> None:
        self.sequences: list[int] = []

    async def submit(self, items: list[AppendItem]) -> asyncio.Future[list[BatchOutcome]]:
        self.sequences.extend(i.header.base_sequence for i in items)
        future: asyncio.Future[list[BatchOutcome]] = asyncio.get_running_loop().create_future()
        future.set_result([BatchOutcome(0, 0)] * len(items))
        return future


def request(seq: int) -> ProduceRequest:
    batch = make_batch([(b"k", b"v")], producer_id=7, producer_epoch=0, base_sequence=seq)
    return ProduceRequest(
        transactional_id=None,
        acks=-1,  # type: ignore[arg-type]
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(
            TopicProduceData(
                name="t",  # type: ignore[arg-type]
                partition_data=(PartitionProduceData(index=0, records=batch),),  # type: ignore[arg-type]
            ),
        ),
    )


async def test_pipelined_requests_reach_the_writer_in_order() -> None:
    topics, writer = SlowFirstTopics(), RecordingWriter()
    svc = cast(Services, SimpleNamespace(settings=Settings(), topics=topics, writer=writer))
    turn = asyncio.Lock()
    ctxs = [RequestContext(0, 9, i, "c", "127.0.0.1:1", turn) for i in range(3)]
    # @api types handlers as returning Awaitable; handle_produce is an `async def`.
    tasks = [
        asyncio.create_task(
            cast("Coroutine[Any, Any, bytes | None]", handle_produce(svc, ctx, request(i)))
        )
        for i, ctx in enumerate(ctxs)
    ]
    for _ in range(5):
        await asyncio.sleep(0)
    assert writer.sequences == []  # the later requests wait for the held-up first one
    topics.release.set()
    await asyncio.gather(*tasks)
    assert writer.sequences == [0, 1, 2]
