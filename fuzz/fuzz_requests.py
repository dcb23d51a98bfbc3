"""Fuzz target: request decoding of every API version the agent serves.

The input is one request frame (what follows the 4-byte size). A frame whose (api key,
version) the registry serves is decoded as it is; any other is mapped onto a served pair by
rewriting its first 4 bytes, so that every input exercises a served decoder (the agent closes
the connection on unknown APIs and versions before decoding anything, which needs no fuzzing).
The low bit of the correlation id picks whether the frame is `bytes` or a read-only
memoryview, as the agent hands small and large frames to the decoder.

Decoding follows `kafka_server._Connection._parse`: `decode_request`, which promises
InvalidRequest for bytes that do not decode (the server closes the connection, "malformed").
Then the bytes fields the handlers parse themselves: Produce's records through
`split_batches` (BatchError, answered as the partition's error code) and JoinGroup's protocol
metadata through `subscription_topics` (None when it does not parse, never an exception).
Anything else escaping is a crash.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import atheris  # type: ignore[import-untyped]
import fuzzlib

with atheris.instrument_imports():
    import shoal.agent  # noqa: F401 - registers every handler, as the agent does
    from shoal.groups.consumer_protocol import subscription_topics
    from shoal.handlers.base import REGISTRY
    from shoal.protocol.apis import ApiKey
    from shoal.protocol.batch import BatchError, split_batches
    from shoal.protocol.framing import InvalidRequest, decode_request
    from shoal.settings import Settings

_HEADER = struct.Struct(">hhi")
SERVED: tuple[tuple[int, int], ...] = tuple(
    sorted(
        (int(spec.api_key), v)
        for spec in REGISTRY.values()
        for v in range(spec.min_version, spec.max_version + 1)
    )
)
_SERVED_SET = frozenset(SERVED)
MESSAGE_BYTES_MAX = Settings().message_bytes_max


def served_frame(data: bytes) -> bytes:
    """`data` with its api key and version mapped onto a served pair if they are not one."""
    key, version, _ = _HEADER.unpack_from(data, 0)
    if (key, version) in _SERVED_SET:
        return data
    key, version = SERVED[(key * 31 + version) % len(SERVED)]
    return struct.pack(">hh", key, version) + data[4:]


def _check_embedded(api_key: int, request: Any) -> None:
    if api_key == ApiKey.PRODUCE:
        for topic in request.topic_data:
            for part in topic.partition_data:
                with contextlib.suppress(BatchError):
                    split_batches(part.records or b"", MESSAGE_BYTES_MAX)
    elif api_key == ApiKey.JOIN_GROUP:
        for protocol in request.protocols:
            found = subscription_topics(protocol.metadata)
            assert found is None or isinstance(found, set)


def TestOneInput(data: bytes) -> None:
    if len(data) < _HEADER.size:
        return  # the read loop closes on frames under 8 bytes before decoding
    raw = served_frame(data)
    key, version, correlation_id = _HEADER.unpack_from(raw, 0)
    frame: bytes | memoryview = raw
    if correlation_id & 1:
        frame = memoryview(raw).toreadonly()
    try:
        header, request = decode_request(frame)
    except InvalidRequest:
        return
    assert header.request_api_key == key, (header.request_api_key, key)
    assert header.request_api_version == version
    assert header.correlation_id == correlation_id
    assert request.__api_key__ == key and request.__version__ == version
    _check_embedded(key, request)


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
