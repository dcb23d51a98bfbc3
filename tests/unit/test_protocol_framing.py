from __future__ import annotations

import datetime
import io
import struct
from typing import Any

import pytest
from kio.index import load_request_schema, load_response_schema
from kio.schema.api_versions.v0.request import ApiVersionsRequest as ApiVersionsRequestV0
from kio.schema.api_versions.v3.request import ApiVersionsRequest as ApiVersionsRequestV3
from kio.schema.api_versions.v3.response import ApiVersion, ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v4.request import MetadataRequest as MetadataRequestV4
from kio.schema.metadata.v4.request import MetadataRequestTopic as MetadataRequestTopicV4
from kio.schema.metadata.v12.request import MetadataRequest as MetadataRequestV12
from kio.schema.metadata.v12.response import MetadataResponse as MetadataResponseV12
from kio.schema.metadata.v12.response import MetadataResponseBroker
from kio.schema.produce.v3.response import ProduceResponse as ProduceResponseV3
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.types import BrokerId, TopicName
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32, i32Timedelta

from shoal.protocol.framing import (
    InvalidRequest,
    UnknownApi,
    UnsupportedVersion,
    decode_request,
    encode_body,
    encode_frame,
    encode_response,
    frame_prefix,
    parse_request_header,
    request_class,
    response_header_flexible,
)
from tests.unit.batchgen import make_batch


def _request_frame(request: Any, correlation_id: int, client_id: str | None = "cli") -> bytes:
    cls = type(request)
    header_cls = cls.__header_schema__
    buf = io.BytesIO()
    entity_writer(header_cls)(
        buf,
        header_cls(
            request_api_key=cls.__api_key__,
            request_api_version=cls.__version__,
            correlation_id=correlation_id,
            client_id=client_id,
        ),
    )
    entity_writer(cls)(buf, request)
    return buf.getvalue()


def _metadata_v12() -> MetadataRequestV12:
    return MetadataRequestV12(
        topics=None, allow_auto_topic_creation=True, include_topic_authorized_operations=False
    )


def test_parse_request_header() -> None:
    frame = _request_frame(_metadata_v12(), correlation_id=-5)
    assert parse_request_header(frame) == (3, 12, -5)
    assert parse_request_header(memoryview(frame)) == (3, 12, -5)
    with pytest.raises(InvalidRequest):
        parse_request_header(frame[:7])


@pytest.mark.parametrize(
    "request_obj",
    [
        _metadata_v12(),
        MetadataRequestV4(
            topics=(MetadataRequestTopicV4(name=TopicName("a")),), allow_auto_topic_creation=False
        ),
        ApiVersionsRequestV0(),
        ApiVersionsRequestV3(client_software_name="shoal-test", client_software_version="1.0"),
        ProduceRequest(
            transactional_id=None,
            acks=i16(-1),
            timeout=i32Timedelta.parse(datetime.timedelta(seconds=30)),
            topic_data=(
                TopicProduceData(
                    name=TopicName("orders"),
                    partition_data=(
                        PartitionProduceData(
                            index=i32(0),
                            records=make_batch([(b"k", b"v")]),  # type: ignore[arg-type]
                        ),
                    ),
                ),
            ),
        ),
    ],
    ids=["metadata-v12", "metadata-v4", "api-versions-v0", "api-versions-v3", "produce-v9"],
)
@pytest.mark.parametrize("client_id", ["cli", None, "shoal_az=zone-1,app"])
def test_decode_request_round_trip(request_obj: Any, client_id: str | None) -> None:
    frame = _request_frame(request_obj, correlation_id=1234, client_id=client_id)
    header, decoded = decode_request(frame)
    assert header.request_api_key == type(request_obj).__api_key__
    assert header.request_api_version == type(request_obj).__version__
    assert header.correlation_id == 1234
    assert header.client_id == client_id
    assert decoded == request_obj
    assert request_class(header.request_api_key, header.request_api_version) is type(request_obj)


def test_unknown_api_carries_header() -> None:
    frame = struct.pack(">hhi", 9999, 0, 42) + b"\xff\xff"
    with pytest.raises(UnknownApi) as info:
        decode_request(frame)
    assert (info.value.api_key, info.value.api_version, info.value.correlation_id) == (9999, 0, 42)


def test_unsupported_version_carries_header() -> None:
    frame = struct.pack(">hhi", 18, 99, 43) + b"\xff\xff"
    with pytest.raises(UnsupportedVersion) as info:
        decode_request(frame)
    assert (info.value.api_key, info.value.api_version, info.value.correlation_id) == (18, 99, 43)
    assert not isinstance(info.value, UnknownApi)


@pytest.mark.parametrize("cut", [8, 10, 13, 16])
def test_truncated_request_is_invalid(cut: int) -> None:
    frame = _request_frame(_metadata_v12(), correlation_id=1)
    assert len(frame) > cut
    with pytest.raises(InvalidRequest):
        decode_request(frame[:cut])


def test_garbage_body_is_invalid() -> None:
    header = _request_frame(_metadata_v12(), 1)[:14]
    with pytest.raises(InvalidRequest):
        decode_request(header + b"\xff\xff\xff\xff\xff\xff")


# Found by fuzz/fuzz_requests.py: kio decodes a length of -1 (0 when flexible) as a null array
# even where the schema forbids null, and the Produce handler then failed iterating None
# (TypeError, logged as a handler failure). Kafka refuses such a request as malformed.
_PRODUCE_V3_HEAD = struct.pack(">hhih", 0, 3, 7, -1)  # header v1, null client id
_PRODUCE_V3_FIELDS = struct.pack(">hhi", -1, 1, 1000)  # null transactional id, acks, timeout
_TOPIC_A = struct.pack(">ih", 1, 1) + b"a"  # topic_data of one topic named "a"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_PRODUCE_V3_FIELDS + struct.pack(">i", -1), id="topic_data"),
        pytest.param(_PRODUCE_V3_FIELDS + _TOPIC_A + struct.pack(">i", -1), id="partition_data"),
    ],
)
def test_null_non_nullable_array_is_invalid(body: bytes) -> None:
    with pytest.raises(InvalidRequest, match="non-nullable array"):
        decode_request(_PRODUCE_V3_HEAD + body)


def test_null_nullable_array_still_decodes() -> None:
    frame = struct.pack(">hhih", 3, 1, 7, -1) + struct.pack(">i", -1)  # Metadata v1: all topics
    _, request = decode_request(frame)
    assert request.topics is None
    flexible = struct.pack(">hhih", 3, 9, 7, -1) + b"\x00" + bytes(5)  # v9, null topics
    _, request = decode_request(flexible)
    assert request.topics is None


def _split_response(frame: bytes, flexible: bool) -> tuple[int, int, bytes]:
    (size,) = struct.unpack_from(">i", frame, 0)
    (correlation_id,) = struct.unpack_from(">i", frame, 4)
    body_start = 9 if flexible else 8
    if flexible:
        assert frame[8] == 0  # no tagged fields in the response header
    return size, correlation_id, frame[body_start:]


def _metadata_response() -> MetadataResponseV12:
    return MetadataResponseV12(
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)),
        brokers=(MetadataResponseBroker(node_id=BrokerId(1), host="h", port=i32(9092), rack=None),),
        cluster_id="c",
        controller_id=BrokerId(1),
        topics=(),
    )


def test_encode_response_flexible_uses_header_v1() -> None:
    response = _metadata_response()
    frame = encode_response(77, response)
    size, correlation_id, body = _split_response(frame, flexible=True)
    assert size == len(frame) - 4
    assert correlation_id == 77
    assert body == encode_body(response)
    decoded, used = entity_reader(MetadataResponseV12)(body, 0)
    assert used == len(body)
    assert decoded == response


def test_encode_response_non_flexible_uses_header_v0() -> None:
    response = ProduceResponseV3(responses=())
    frame = encode_response(5, response)
    size, correlation_id, body = _split_response(frame, flexible=False)
    assert (size, correlation_id) == (len(frame) - 4, 5)
    assert entity_reader(ProduceResponseV3)(body, 0)[0] == response


def test_api_versions_response_always_header_v0() -> None:
    response = ApiVersionsResponse(
        error_code=ErrorCode.none,
        api_keys=(ApiVersion(api_key=i16(18), min_version=i16(0), max_version=i16(3)),),
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)),
    )
    assert ApiVersionsResponse.__flexible__
    frame = encode_response(9, response)
    size, correlation_id, body = _split_response(frame, flexible=False)
    assert (size, correlation_id) == (len(frame) - 4, 9)
    assert entity_reader(ApiVersionsResponse)(body, 0)[0] == response
    assert not response_header_flexible(18, 3)


@pytest.mark.parametrize(
    ("api_key", "version", "flexible"),
    [
        (3, 12, True),
        (3, 4, False),
        (0, 8, False),
        (0, 9, True),
        (1, 11, False),
        (1, 12, True),
        (18, 0, False),
        (18, 4, False),
    ],
)
def test_response_header_flexible(api_key: int, version: int, flexible: bool) -> None:
    assert response_header_flexible(api_key, version) is flexible
    if api_key != 18:
        assert load_response_schema(api_key, version).__flexible__ is flexible


def test_response_header_flexible_unknown() -> None:
    with pytest.raises(UnknownApi):
        response_header_flexible(9999, 0)
    with pytest.raises(UnsupportedVersion):
        response_header_flexible(3, 99)


@pytest.mark.parametrize("flexible", [True, False])
def test_encode_frame_matches_encode_response(flexible: bool) -> None:
    response: Any = _metadata_response() if flexible else ProduceResponseV3(responses=())
    body = encode_body(response)
    assert encode_frame(31, flexible, body) == encode_response(31, response)
    assert frame_prefix(31, flexible, len(body)) + body == encode_response(31, response)
    assert frame_prefix(31, flexible) == encode_response(31, response)[4 : 9 if flexible else 8]


def test_request_class_matches_kio() -> None:
    assert request_class(3, 12) is load_request_schema(3, 12)
    with pytest.raises(UnsupportedVersion):
        request_class(3, 1000)
