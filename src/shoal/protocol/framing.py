"""Kafka request/response framing around kio's (de)serializers.

A *frame* here is the bytes of one request after the 4-byte size prefix (the connection layer
strips and checks that prefix). Responses are returned whole, size prefix included.

Header versions: requests carry header v1 (non-flexible APIs) or v2 (flexible, with tagged fields);
kio knows which for every request class (`__header_schema__`). Responses carry header v0, or v1
(one extra empty tagged-field byte) for flexible versions, except ApiVersions, whose response
header is always v0 so that a client can parse it before it knows what the broker speaks.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import types
import typing
from collections.abc import Callable
from typing import Any, Final

from kio.index import KioIndexError, UnknownAPIKey, load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from shoal.protocol.apis import ApiKey
from shoal.protocol.array_counts import check_array_counts

_REQUEST_HEADER: Final = struct.Struct(">hhi")
_SIZE: Final = struct.Struct(">i")
_SIZE_AND_CORRELATION: Final = struct.Struct(">ii")
_EMPTY_TAGGED_FIELDS: Final = b"\x00"

_Reader = Callable[[Any, int], tuple[Any, int]]
_Writer = Callable[[Any, Any], None]


class ProtocolError(Exception):
    """The request cannot be served; the connection layer decides whether to answer or close."""


class InvalidRequest(ProtocolError):
    """Bytes that do not decode as the request they claim to be: close the connection."""


class UnsupportedRequest(ProtocolError):
    """An API key or version this codec does not know. Carries the header for an answer."""

    def __init__(self, api_key: int, api_version: int, correlation_id: int) -> None:
        super().__init__(f"api_key={api_key} api_version={api_version}")
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id


class UnknownApi(UnsupportedRequest):
    """No such API key."""


class UnsupportedVersion(UnsupportedRequest):
    """A known API at a version kio has no schema for."""


# Filled lazily; bounded by the finite set of (api_key, version) pairs kio knows, and failures are
# never stored, so hostile keys cannot grow them.
_request_codecs: dict[tuple[int, int], tuple[type[Any], _Reader, _Reader]] = {}
_response_flexible: dict[tuple[int, int], bool] = {}
_writers: dict[type[Any], _Writer] = {}
# Per kio class: (array fields that may not be null, fields holding entities to check in turn).
# Bounded like the codecs: one entry per class kio has.
_null_checks: dict[type[Any], tuple[tuple[str, ...], tuple[str, ...]]] = {}


def parse_request_header(frame: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) of a request frame, from its first 8 bytes."""
    if len(frame) < _REQUEST_HEADER.size:
        raise InvalidRequest(f"request of {len(frame)} bytes is shorter than a header")
    key, version, correlation_id = _REQUEST_HEADER.unpack_from(frame, 0)
    return key, version, correlation_id


def _request_codec(
    api_key: int, api_version: int, correlation_id: int
) -> tuple[type[Any], _Reader, _Reader]:
    codec = _request_codecs.get((api_key, api_version))
    if codec is not None:
        return codec
    try:
        cls = load_request_schema(api_key, api_version)
    except KioIndexError as e:
        kind = UnknownApi if isinstance(e, UnknownAPIKey) else UnsupportedVersion
        raise kind(api_key, api_version, correlation_id) from e
    codec = (cls, entity_reader(cls.__header_schema__), entity_reader(cls))
    _request_codecs[(api_key, api_version)] = codec
    return codec


def request_class(api_key: int, api_version: int) -> type[Any]:
    """kio's request dataclass for (api_key, api_version); raises UnknownApi/UnsupportedVersion."""
    return _request_codec(api_key, api_version, -1)[0]


def decode_request(frame: bytes | bytearray | memoryview) -> tuple[Any, Any]:
    """Decode a request frame into (kio RequestHeader, kio request dataclass).

    Raises UnknownApi / UnsupportedVersion (with the header fields, so ApiVersions can still be
    answered) or InvalidRequest for bytes that do not decode (caused by ArrayTooLong for an
    array count the bytes left cannot hold).
    """
    api_key, api_version, correlation_id = parse_request_header(frame)
    cls, read_header, read_body = _request_codec(api_key, api_version, correlation_id)
    try:
        header, header_size = read_header(frame, 0)
        check_array_counts(cls, frame, header_size)  # before kio reserves room for them
        request, _ = read_body(frame, header_size)
    except Exception as e:  # kio raises SerialError, ValueError, UnicodeDecodeError, ...
        raise InvalidRequest(
            f"api_key={api_key} api_version={api_version} does not decode: {e}"
        ) from e
    null = _null_array(request)
    if null is not None:
        raise InvalidRequest(
            f"api_key={api_key} api_version={api_version}: non-nullable array {null} is null"
        )
    return header, request


def _null_array(entity: Any) -> str | None:
    """The name of a non-nullable array field that is null in `entity` or an entity inside.

    kio decodes an array of length -1 (0 when flexible) as None even where the schema does not
    allow null; Kafka refuses such a request ("non-nullable field ... was serialized as
    null"), and handlers iterate these fields without a check."""
    non_null, nested = _null_checks_of(type(entity))
    for name in non_null:
        if getattr(entity, name) is None:
            return name
    for name in nested:
        value = getattr(entity, name)
        for item in value if isinstance(value, tuple) else (value,):
            if item is not None and (found := _null_array(item)) is not None:
                return found
    return None


def _null_checks_of(cls: type[Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    checks = _null_checks.get(cls)
    if checks is not None:
        return checks
    non_null: list[str] = []
    nested: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint)
        nullable = typing.get_origin(hint) in (typing.Union, types.UnionType) and (
            type(None) in args
        )
        if nullable:
            hint = next(a for a in args if a is not type(None))
        is_array = typing.get_origin(hint) is tuple
        if is_array and not nullable:
            non_null.append(f.name)
        element = typing.get_args(hint)[0] if is_array else hint
        entity = isinstance(element, type) and dataclasses.is_dataclass(element)
        if entity and _null_checks_of(element) != ((), ()):
            nested.append(f.name)
    checks = (tuple(non_null), tuple(nested))
    _null_checks[cls] = checks
    return checks


def response_header_flexible(api_key: int, api_version: int) -> bool:
    """Whether the response of (api_key, api_version) uses response header v1."""
    if api_key == ApiKey.API_VERSIONS:
        return False
    flexible = _response_flexible.get((api_key, api_version))
    if flexible is None:
        try:
            cls = load_response_schema(api_key, api_version)
        except KioIndexError as e:
            kind = UnknownApi if isinstance(e, UnknownAPIKey) else UnsupportedVersion
            raise kind(api_key, api_version, -1) from e
        flexible = bool(cls.__flexible__)
        _response_flexible[(api_key, api_version)] = flexible
    return flexible


def frame_prefix(correlation_id: int, flexible: bool, body_len: int | None = None) -> bytes:
    """The response header for a pre-encoded body.

    Without `body_len`: only the response header (4 or 5 bytes), for callers that write the size
    themselves. With `body_len`: size prefix + header, ready to be followed by the body.
    """
    header = _SIZE.pack(correlation_id)
    if flexible:
        header += _EMPTY_TAGGED_FIELDS
    if body_len is None:
        return header
    return _SIZE.pack(len(header) + body_len) + header


def encode_frame(
    correlation_id: int, flexible: bool, body: bytes | bytearray | memoryview
) -> bytes:
    """A whole response frame (size + header + body) around an already-encoded body."""
    if flexible:
        head = _SIZE_AND_CORRELATION.pack(len(body) + 5, correlation_id) + _EMPTY_TAGGED_FIELDS
    else:
        head = _SIZE_AND_CORRELATION.pack(len(body) + 4, correlation_id)
    return b"".join((head, body))


def _writer(cls: type[Any]) -> _Writer:
    write = _writers.get(cls)
    if write is None:
        write = entity_writer(cls)
        _writers[cls] = write
    return write


def encode_body(response: Any) -> bytes:
    """The body bytes of a kio response dataclass (no size, no header)."""
    buf = io.BytesIO()
    _writer(type(response))(buf, response)
    return buf.getvalue()


def encode_response(correlation_id: int, response: Any) -> bytes:
    """A whole response frame (size + header + body) for a kio response dataclass."""
    cls = type(response)
    flexible = bool(cls.__flexible__) and cls.__api_key__ != ApiKey.API_VERSIONS
    buf = io.BytesIO()
    buf.write(_SIZE_AND_CORRELATION.pack(0, correlation_id))
    if flexible:
        buf.write(_EMPTY_TAGGED_FIELDS)
    _writer(cls)(buf, response)
    view = buf.getbuffer()
    _SIZE.pack_into(view, 0, len(view) - 4)
    del view  # a live export would stop getvalue() from sharing the buffer
    return buf.getvalue()
