"""protocol/messages.py: responses are built by class, and a misspelt field fails loudly."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from kio.index import load_response_schema
from kio.schema.list_offsets.v11.response import ListOffsetsResponse
from kio.schema.metadata.v0.response import MetadataResponseTopic as MetadataTopicV0
from kio.schema.metadata.v13.response import MetadataResponseTopic

import shoal.agent  # noqa: F401  (importing the agent registers every handler)
from shoal.handlers.base import REGISTRY, RequestContext
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import (
    ZERO_THROTTLE,
    UnknownField,
    fields_of,
    keep_fields,
    requests,
    responses,
    versions_of,
)

SERVED = [
    (spec.api_key, v)
    for spec in REGISTRY.values()
    for v in range(spec.min_version, spec.max_version + 1)
]


def _top(key: ApiKey, version: int) -> type:
    return load_response_schema(key, version)


@pytest.mark.parametrize(("key", "version"), SERVED, ids=[f"{k.api_name}-v{v}" for k, v in SERVED])
def test_a_misspelt_field_fails_at_every_served_version(key: ApiKey, version: int) -> None:
    ctx = RequestContext(key, version, 1, "c", "127.0.0.1:1")
    msgs = ctx.responses()
    cls = _top(key, version)
    with pytest.raises(UnknownField, match="throttle_tme"):
        msgs.make(cls, throttle_tme=ZERO_THROTTLE)


def test_a_field_of_a_later_version_is_dropped_at_an_earlier_one() -> None:
    v0 = responses(ApiKey.METADATA, 0).make(
        MetadataResponseTopic, error_code=0, name="t", is_internal=False, partitions=()
    )
    assert type(v0).__module__ == "kio.schema.metadata.v0.response"
    assert "is_internal" not in fields_of(type(v0))
    v12 = responses(ApiKey.METADATA, 12).make(
        MetadataTopicV0,
        error_code=0,
        name="t",
        topic_id=None,
        is_internal=False,
        partitions=(),
        topic_authorized_operations=0,
    )
    assert v12.is_internal is False  # a class named by an old version builds the new one


def test_a_class_of_another_api_fails() -> None:
    with pytest.raises(UnknownField, match="not a Metadata message"):
        responses(ApiKey.METADATA, 12).make(ListOffsetsResponse)


def test_a_class_the_version_lacks_fails() -> None:
    from kio.schema.offset_fetch.v10.response import OffsetFetchResponseGroup

    with pytest.raises(UnknownField, match="v7 has no OffsetFetchResponseGroup"):
        responses(ApiKey.OFFSET_FETCH, 7).make(OffsetFetchResponseGroup)


def test_requests_are_checked_the_same_way() -> None:
    from kio.schema.metadata.v13.request import MetadataRequest

    with pytest.raises(UnknownField, match="topcs"):
        requests(ApiKey.METADATA, 4).make(MetadataRequest, topcs=None)
    made = requests(ApiKey.METADATA, 4).make(
        MetadataRequest, topics=None, allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )  # fmt: skip
    assert type(made).__module__ == "kio.schema.metadata.v4.request"


def test_keep_fields_keeps_only_the_version_s_fields() -> None:
    assert keep_fields(MetadataTopicV0, {"name": "t", "topic_id": None}) == {"name": "t"}


def test_api_keys_and_names_match_kio() -> None:
    assert ApiKey.INIT_PRODUCER_ID.api_name == "InitProducerId"
    assert ApiKey(18) is ApiKey.API_VERSIONS
    for key in ApiKey:
        assert len(versions_of(key)) >= 1
    for spec in REGISTRY.values():
        assert spec.name == spec.api_key.api_name


def test_fields_of_the_version_itself_load_no_other_version() -> None:
    """A cold agent imported every version's schema module on its first answer of each API
    (~0.3 s of CPU inside the first Fetch round of a benchmark). Only a field the version lacks
    may send the check to the other versions."""
    script = (
        "import sys\n"
        "from kio.schema.list_offsets.v11.response import ListOffsetsResponse\n"
        "from shoal.protocol.apis import ApiKey\n"
        "from shoal.protocol.messages import ZERO_THROTTLE, responses\n"
        "responses(ApiKey.LIST_OFFSETS, 11).make(\n"
        "    ListOffsetsResponse, throttle_time=ZERO_THROTTLE, topics=())\n"
        "print(sorted(m for m in sys.modules if m.startswith('kio.schema.list_offsets.v')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    loaded = ast.literal_eval(out.strip())
    assert {m.split(".")[3] for m in loaded} == {"v11"}, loaded
