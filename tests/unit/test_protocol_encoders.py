"""The hand-written Produce/Fetch encoders against kio's `entity_writer`, byte for byte.

`hypothesis` is not installed, so besides hand-picked cases every version gets a few dozen
responses drawn from a seeded `random.Random`.
"""

from __future__ import annotations

import datetime
import io
import random
import sys
import uuid
from types import ModuleType
from typing import Any

import pytest
from kio.index import load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32Timedelta

from shoal.protocol import errors
from shoal.protocol.encoders import (
    FETCH_MAX_VERSION,
    FETCH_MIN_VERSION,
    PRODUCE_MAX_VERSION,
    PRODUCE_MIN_VERSION,
    FetchPartitionResult,
    ProducePartitionResult,
    encode_fetch_response,
    encode_produce_response,
)
from shoal.protocol.messages import keep_fields
from tests.unit.batchgen import make_batch

PRODUCE_VERSIONS = range(PRODUCE_MIN_VERSION, PRODUCE_MAX_VERSION + 1)
FETCH_VERSIONS = range(FETCH_MIN_VERSION, FETCH_MAX_VERSION + 1)
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
TOPIC_IDS = {"orders": uuid.UUID(int=0x1234), "billing": uuid.UUID(int=2**127 + 5)}


def _module(api_key: int, version: int) -> ModuleType:
    return sys.modules[load_response_schema(api_key, version).__module__]


def _build(module: ModuleType, class_name: str, **kwargs: Any) -> Any:
    cls = getattr(module, class_name)
    return cls(**keep_fields(cls, kwargs))


def _kio_bytes(response: Any) -> bytes:
    buf = io.BytesIO()
    entity_writer(type(response))(buf, response)
    return buf.getvalue()


def _throttle(ms: int) -> i32Timedelta:
    return i32Timedelta.parse(datetime.timedelta(milliseconds=ms))


# --- Produce ------------------------------------------------------------------------------------


def kio_produce(
    version: int,
    topics: list[tuple[str, list[ProducePartitionResult]]],
    throttle_ms: int,
) -> bytes:
    m = _module(0, version)
    responses = tuple(
        _build(
            m,
            "TopicProduceResponse",
            name=name,
            topic_id=TOPIC_IDS.get(name),
            partition_responses=tuple(
                _build(
                    m,
                    "PartitionProduceResponse",
                    index=p.index,
                    error_code=ErrorCode(p.error_code),
                    base_offset=p.base_offset,
                    log_append_time=None
                    if p.log_append_time_ms == -1
                    else EPOCH + datetime.timedelta(milliseconds=p.log_append_time_ms),
                    log_start_offset=p.log_start_offset,
                    record_errors=tuple(
                        _build(
                            m,
                            "BatchIndexAndErrorMessage",
                            batch_index=i,
                            batch_index_error_message=msg,
                        )
                        for i, msg in p.record_errors
                    ),
                    error_message=p.error_message,
                )
                for p in parts
            ),
        )
        for name, parts in topics
    )
    return _kio_bytes(
        _build(m, "ProduceResponse", responses=responses, throttle_time=_throttle(throttle_ms))
    )


def _produce_case(version: int) -> list[tuple[str, list[ProducePartitionResult]]]:
    record_errors = [(0, "bad"), (3, None)] if version >= 8 else []
    return [
        (
            "orders",
            [
                ProducePartitionResult(0, errors.NONE, 0, log_start_offset=0),
                ProducePartitionResult(7, errors.NONE, 2**62 + 1, 1_700_000_000_123, 2**40),
                ProducePartitionResult(
                    2,
                    errors.INVALID_RECORD,
                    -1,
                    error_message="batch 0 is bad" if version >= 8 else None,
                    record_errors=record_errors,
                ),
            ],
        ),
        ("billing", []),
        ("ünïcode-tøpic", [ProducePartitionResult(1, errors.UNKNOWN_TOPIC_OR_PARTITION, -1)]),
    ]


def _random_produce(rng: random.Random, version: int) -> list[tuple[str, list[Any]]]:
    topics: list[tuple[str, list[Any]]] = []
    for t in range(rng.randint(0, 4)):
        parts = []
        for i in range(rng.randint(0, 6)):
            with_errors = version >= 8 and rng.random() < 0.3
            parts.append(
                ProducePartitionResult(
                    index=rng.randint(0, 2**31 - 1),
                    error_code=rng.choice([0, 2, 3, 10, 45, 47, 87, -1]),
                    base_offset=rng.choice([-1, 0, rng.randint(0, 2**63 - 1)]),
                    log_append_time_ms=rng.choice([-1, rng.randint(0, 2**42)]),
                    log_start_offset=rng.choice([-1, rng.randint(0, 2**63 - 1)]),
                    error_message=rng.choice([None, "", "oops é"]) if with_errors else None,
                    record_errors=[(i, rng.choice([None, "x" * i]))] if with_errors else [],
                )
            )
        topics.append((rng.choice(["orders", "billing", "t" * 200]) + str(t), parts))
    return topics


@pytest.mark.parametrize("version", PRODUCE_VERSIONS)
def test_produce_matches_kio(version: int) -> None:
    topics = _produce_case(version)
    ours = encode_produce_response(version, topics, throttle_ms=17, topic_ids=TOPIC_IDS)
    assert ours == kio_produce(version, topics, 17)


@pytest.mark.parametrize("version", PRODUCE_VERSIONS)
def test_produce_random_matches_kio(version: int) -> None:
    rng = random.Random(version)
    for _ in range(40):
        topics = _random_produce(rng, version)
        throttle = rng.choice([0, 1, 30_000])
        ours = encode_produce_response(version, topics, throttle, topic_ids=TOPIC_IDS)
        assert ours == kio_produce(version, topics, throttle)


@pytest.mark.parametrize("version", PRODUCE_VERSIONS)
def test_produce_decodes_with_kio(version: int) -> None:
    topics = _produce_case(version)
    body = encode_produce_response(version, topics, topic_ids=TOPIC_IDS)
    decoded: Any
    decoded, size = entity_reader(load_response_schema(0, version))(body, 0)
    assert size == len(body)
    first = decoded.responses[0]
    assert (first.topic_id if version >= 13 else first.name) == (
        TOPIC_IDS["orders"] if version >= 13 else "orders"
    )
    assert [p.base_offset for p in first.partition_responses] == [0, 2**62 + 1, -1]


def test_produce_v13_topic_id_given_directly() -> None:
    by_name = encode_produce_response(13, _produce_case(13), topic_ids=TOPIC_IDS)
    direct = encode_produce_response(
        13, [(TOPIC_IDS.get(name, name), parts) for name, parts in _produce_case(13)]
    )
    # The third topic has no id: by name it is written as the null id.
    assert by_name[: by_name.index(bytes(16))] == direct[: by_name.index(bytes(16))]
    assert encode_produce_response(13, [("orders", [])])[1:17] == bytes(16)


def test_produce_rejects_unknown_versions_and_ids_before_v13() -> None:
    with pytest.raises(ValueError):
        encode_produce_response(2, [])
    with pytest.raises(ValueError):
        encode_produce_response(14, [])
    with pytest.raises(ValueError):
        encode_produce_response(12, [(uuid.uuid4(), [])])


# --- Fetch --------------------------------------------------------------------------------------


def _records_bytes(records: Any) -> bytes | None:
    if records is None:
        return None
    if isinstance(records, bytes | bytearray | memoryview):
        return bytes(records)
    return b"".join(records)


def kio_fetch(
    version: int,
    topics: list[tuple[str, uuid.UUID | None, list[FetchPartitionResult]]],
    throttle_ms: int,
    error_code: int,
    session_id: int,
) -> bytes:
    m = _module(1, version)
    responses = tuple(
        _build(
            m,
            "FetchableTopicResponse",
            topic=name,
            topic_id=topic_id,
            partitions=tuple(
                _build(
                    m,
                    "PartitionData",
                    partition_index=p.partition_index,
                    error_code=ErrorCode(p.error_code),
                    high_watermark=p.high_watermark,
                    last_stable_offset=p.last_stable_offset,
                    log_start_offset=p.log_start_offset,
                    aborted_transactions=None
                    if p.aborted_transactions is None
                    else tuple(
                        _build(m, "AbortedTransaction", producer_id=pid, first_offset=first)
                        for pid, first in p.aborted_transactions
                    ),
                    preferred_read_replica=p.preferred_read_replica,
                    records=_records_bytes(p.records),
                )
                for p in parts
            ),
        )
        for name, topic_id, parts in topics
    )
    return _kio_bytes(
        _build(
            m,
            "FetchResponse",
            throttle_time=_throttle(throttle_ms),
            error_code=ErrorCode(error_code),
            session_id=session_id,
            responses=responses,
        )
    )


BATCHES = [make_batch([(b"k", b"v" * n)] * (n % 3 + 1), base_offset=n) for n in (1, 50, 300)]


def _fetch_case() -> list[tuple[str, uuid.UUID | None, list[FetchPartitionResult]]]:
    return [
        (
            "orders",
            TOPIC_IDS["orders"],
            [
                FetchPartitionResult(0, errors.NONE, 10, 10, 0, None, -1, BATCHES[0]),
                FetchPartitionResult(1, errors.NONE, 2**62, 2**61, 2**40, [], 2, BATCHES),
                FetchPartitionResult(2, errors.OFFSET_OUT_OF_RANGE, 5, 5, 3, None, -1, b""),
                FetchPartitionResult(3, errors.NONE, 9, 4, 0, [(77, 4), (2**50, 6)], -1, []),
                FetchPartitionResult(4, errors.NOT_LEADER_OR_FOLLOWER, -1, records=None),
                FetchPartitionResult(5, errors.NONE, 1, records=memoryview(BATCHES[1])),
            ],
        ),
        ("billing", None, []),
        ("ünïcode", TOPIC_IDS["billing"], [FetchPartitionResult(0, 0, 0)]),
    ]


def _random_fetch(rng: random.Random) -> list[tuple[str, uuid.UUID | None, list[Any]]]:
    topics: list[tuple[str, uuid.UUID | None, list[Any]]] = []
    for t in range(rng.randint(0, 3)):
        parts = []
        for _ in range(rng.randint(0, 5)):
            aborted = rng.choice(
                [None, [], [(rng.randint(0, 2**62), rng.randint(0, 2**62)) for _ in range(3)]]
            )
            records = rng.choice(
                [None, b"", BATCHES[rng.randint(0, 2)], BATCHES[: rng.randint(0, 3)]]
            )
            parts.append(
                FetchPartitionResult(
                    partition_index=rng.randint(0, 2**31 - 1),
                    error_code=rng.choice([0, 1, 3, 6, 100, -1]),
                    high_watermark=rng.choice([-1, rng.randint(0, 2**63 - 1)]),
                    last_stable_offset=rng.choice([-1, rng.randint(0, 2**63 - 1)]),
                    log_start_offset=rng.choice([-1, rng.randint(0, 2**63 - 1)]),
                    aborted_transactions=aborted,
                    preferred_read_replica=rng.choice([-1, 0, 2**31 - 1]),
                    records=records,
                )
            )
        topic_id = rng.choice([None, uuid.UUID(int=rng.getrandbits(128))])
        topics.append((f"topic-{t}" * rng.randint(1, 30), topic_id, parts))
    return topics


@pytest.mark.parametrize("version", FETCH_VERSIONS)
def test_fetch_matches_kio(version: int) -> None:
    topics = _fetch_case()
    ours = encode_fetch_response(version, topics, throttle_ms=5, error_code=0, session_id=99)
    assert ours == kio_fetch(version, topics, 5, 0, 99)


@pytest.mark.parametrize("version", FETCH_VERSIONS)
def test_fetch_random_matches_kio(version: int) -> None:
    rng = random.Random(1000 + version)
    for _ in range(40):
        topics = _random_fetch(rng)
        throttle = rng.choice([0, 250])
        error_code = rng.choice([0, errors.FETCH_SESSION_ID_NOT_FOUND])
        session = rng.choice([0, 2**31 - 1, -1])
        ours = encode_fetch_response(version, topics, throttle, error_code, session)
        assert ours == kio_fetch(version, topics, throttle, error_code, session)


@pytest.mark.parametrize("version", FETCH_VERSIONS)
def test_fetch_decodes_with_kio(version: int) -> None:
    body = encode_fetch_response(version, _fetch_case(), session_id=3)
    decoded: Any
    decoded, size = entity_reader(load_response_schema(1, version))(body, 0)
    assert size == len(body)
    parts = decoded.responses[0].partitions
    assert bytes(parts[0].records) == BATCHES[0]
    assert bytes(parts[1].records) == b"".join(BATCHES)
    assert parts[4].records is None
    if version >= 13:
        assert decoded.responses[0].topic_id == TOPIC_IDS["orders"]
    else:
        assert decoded.responses[0].topic == "orders"


def test_fetch_rejects_unknown_versions() -> None:
    with pytest.raises(ValueError):
        encode_fetch_response(3, [])
    with pytest.raises(ValueError):
        encode_fetch_response(19, [])


def test_fetch_parts_keep_record_views_uncopied() -> None:
    from shoal.protocol.encoders import (
        FetchPartitionResult,
        encode_fetch_response,
        encode_fetch_response_parts,
    )

    block = bytearray(b"x" * 4096)
    view = memoryview(block)[100:1100]
    topics = [("t", uuid.UUID(int=5), [FetchPartitionResult(0, 0, 10, 10, 0, None, -1, [view])])]
    for version in (4, 12, 13, 17):
        parts = encode_fetch_response_parts(version, topics)
        assert any(part is view for part in parts)  # the cached bytes themselves, not a copy
        assert b"".join(parts) == encode_fetch_response(version, topics)
