"""check_array_counts: refuses array counts the bytes cannot hold, before kio allocates for
them, and never refuses a request kio decodes (every served version, at the tightest sizes)."""

from __future__ import annotations

import dataclasses
import datetime
import io
import struct
import subprocess
import sys
import uuid
from typing import Any

import pytest
from kio.serial import entity_writer
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_schema_field_type,
    is_optional,
)

import shoal.agent  # noqa: F401 - registers every handler, as the agent does
from shoal.handlers.base import REGISTRY
from shoal.protocol.array_counts import ArrayTooLong
from shoal.protocol.framing import InvalidRequest, decode_request, request_class
from shoal.protocol.wire import uvarint

SERVED = [
    (int(spec.api_key), v)
    for spec in REGISTRY.values()
    for v in range(spec.min_version, spec.max_version + 1)
]

_ZERO: dict[str, Any] = {
    "string": "",
    "bytes": b"",
    "records": b"",
    "bool": False,
    "uuid": uuid.UUID(int=0),
    "timedelta_i32": datetime.timedelta(0),
    "timedelta_i64": datetime.timedelta(0),
}


def _smallest(cls: type[Any], elements: int) -> Any:
    """The smallest instance of `cls` with `elements` smallest elements in every array:
    nullable fields null, strings empty, numbers zero."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        shape = classify_field(f)
        if is_optional(f) and not shape.is_array:
            values[f.name] = None
        elif isinstance(shape, EntityTupleField):
            values[f.name] = tuple(_smallest(shape.type_, elements) for _ in range(elements))
        elif isinstance(shape, EntityField):
            values[f.name] = _smallest(shape.type_, elements)
        elif isinstance(shape, PrimitiveTupleField):
            values[f.name] = (_ZERO.get(get_schema_field_type(f), 0),) * elements
        else:
            values[f.name] = _ZERO.get(get_schema_field_type(f), 0)
    return cls(**values)


def _frame(request: Any) -> bytes:
    cls = type(request)
    header_cls = cls.__header_schema__
    buf = io.BytesIO()
    header = header_cls(
        request_api_key=cls.__api_key__,
        request_api_version=cls.__version__,
        correlation_id=1,
        client_id=None,
    )
    entity_writer(header_cls)(buf, header)
    entity_writer(cls)(buf, request)
    return buf.getvalue()


@pytest.mark.parametrize("elements", [1, 3])
@pytest.mark.parametrize(("api_key", "version"), SERVED)
def test_smallest_requests_decode(api_key: int, version: int, elements: int) -> None:
    """Arrays of the smallest elements, up to the last byte: a count check off by one byte
    per element would refuse these."""
    request = _smallest(request_class(api_key, version), elements)
    frame = _frame(request)
    _, decoded = decode_request(frame)
    assert decoded == request
    with pytest.raises(InvalidRequest):
        decode_request(frame[:-1])


def test_count_beyond_the_bytes_is_refused() -> None:
    # Metadata v1: topics, a legacy array of 3 names (at least 2 bytes each) in 4 bytes.
    frame = struct.pack(">hhih", 3, 1, 7, -1) + struct.pack(">i", 3) + bytes(4)
    with pytest.raises(InvalidRequest) as info:
        decode_request(frame)
    assert isinstance(info.value.__cause__, ArrayTooLong)
    assert info.value.__cause__.count == 3


# Found by fuzz/fuzz_requests.py: OffsetFetch v9 whose arrays claim billions of elements. kio
# reserved room for them before reading any, the allocation failed and the agent aborted.
_OFFSET_FETCH_V9_ABORT = bytes.fromhex(
    "000900093d3dbd0000000014141414141414141414141414141414001414000000000aff403dffffffff3dff"
)
# Metadata v9 (flexible): a compact topics array of 4 billion elements in 10 bytes.
_METADATA_V9_HUGE = struct.pack(">hhih", 3, 9, 7, -1) + b"\x00" + uvarint(4_000_000_001) + bytes(10)


@pytest.mark.parametrize(
    "frame",
    [_OFFSET_FETCH_V9_ABORT, _METADATA_V9_HUGE],
    ids=["offset-fetch-v9-fuzz", "metadata-v9-4e9"],
)
def test_huge_array_count_does_not_abort(frame: bytes) -> None:
    """In a subprocess: without the check the decoder aborts the interpreter."""
    code = (
        "import sys\n"
        "from shoal.protocol.framing import InvalidRequest, decode_request\n"
        "try:\n"
        "    decode_request(bytes.fromhex(sys.argv[1]))\n"
        "except InvalidRequest as exc:\n"
        "    print(type(exc.__cause__).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, frame.hex()], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "ArrayTooLong"
