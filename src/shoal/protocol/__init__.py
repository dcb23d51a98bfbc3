"""Sans-IO Kafka codec: framing, hot-path encoders, record batch validation, error codes.

No asyncio, no storage, no sockets: everything here is a pure function of bytes.
"""

from __future__ import annotations

from shoal.protocol.batch import (
    BatchError,
    BatchHeader,
    patch_base_offset,
    patch_base_offset_into,
    split_batches,
)
from shoal.protocol.encoders import (
    FetchPartitionResult,
    ProducePartitionResult,
    encode_fetch_response,
    encode_produce_response,
)
from shoal.protocol.framing import (
    InvalidRequest,
    ProtocolError,
    UnknownApi,
    UnsupportedRequest,
    UnsupportedVersion,
    decode_request,
    encode_body,
    encode_frame,
    encode_response,
    frame_prefix,
    parse_request_header,
    response_header_flexible,
)

__all__ = [
    "BatchError",
    "BatchHeader",
    "FetchPartitionResult",
    "InvalidRequest",
    "ProducePartitionResult",
    "ProtocolError",
    "UnknownApi",
    "UnsupportedRequest",
    "UnsupportedVersion",
    "decode_request",
    "encode_body",
    "encode_fetch_response",
    "encode_frame",
    "encode_produce_response",
    "encode_response",
    "frame_prefix",
    "parse_request_header",
    "patch_base_offset",
    "patch_base_offset_into",
    "response_header_flexible",
    "split_batches",
]
