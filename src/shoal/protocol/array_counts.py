"""Array counts of a request checked against its bytes before kio decodes it.

kio's native decoder reserves room for an array's elements as soon as it reads the count, before
reading any element: a 43-byte request whose compact array claims 4 billion elements makes it
ask for 32 GB, and the failed allocation aborts the whole agent (found by fuzz/fuzz_requests.py).
Every element of every request array takes at least one byte, so a count above the bytes left
is never valid; Kafka's own parser refuses such a request the same way.

`check_array_counts` walks a request body by its kio schema, reading lengths and counts and
skipping everything else, and raises `ArrayTooLong` for the first count whose elements cannot
fit in the bytes left. It decides nothing else: where the bytes end early or a varint is
malformed it stops and leaves the verdict to kio. The walk plan of each class is built once
(bounded by the classes kio has); for a Produce request the walk reads a few fields per
partition and skips the records whole.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any, Final

from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
)

_FIXED_BYTES: Final = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}
_STRING_TYPES: Final = frozenset({"string"})
_BYTES_TYPES: Final = frozenset({"bytes", "records"})
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


class ArrayTooLong(ValueError):
    """An array count larger than the bytes left could hold."""

    def __init__(self, name: str, count: int, left: int) -> None:
        super().__init__(f"array {name} of {count} elements in {left} bytes")
        self.count = count


class _Stop(Exception):
    """The bytes end early or do not read as a length: kio gives the verdict."""


# One step of a plan: (kind, field name, detail). Kinds:
#   "fixed": skip `detail` bytes; "string"/"bytes": a length-prefixed value;
#   "array": (element min bytes, element step or None for fixed, element plan or None);
#   "tags": {tag: plan of a tagged entity that holds arrays}.
_Step = tuple[str, str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    flexible: bool
    steps: tuple[_Step, ...]
    min_bytes: int  # the least an instance encodes to
    has_arrays: bool


_plans: dict[type[Any], _Plan] = {}


def check_array_counts(cls: type[Any], frame: bytes | bytearray | memoryview, pos: int) -> None:
    """Raise ArrayTooLong if an array of the `cls` body at `frame[pos:]` claims more elements
    than the bytes left could hold."""
    plan = _plan(cls)
    if not plan.has_arrays:
        return
    try:
        _walk(plan, frame, pos, len(frame))
    except (_Stop, struct.error, IndexError):
        return  # not this check's to judge: kio will refuse the bytes


def _walk(plan: _Plan, buf: bytes | bytearray | memoryview, pos: int, end: int) -> int:
    flexible = plan.flexible
    for kind, name, detail in plan.steps:
        if kind == "fixed":
            pos += detail
        elif kind == "array":
            count, pos = _count(buf, pos, end, flexible)
            if count <= 0:
                continue
            min_bytes, elem_step, elem_plan = detail
            if count * min_bytes > end - pos:
                raise ArrayTooLong(name, count, end - pos)
            if elem_plan is not None:
                for _ in range(count):
                    pos = _walk(elem_plan, buf, pos, end)
            elif elem_step is None:
                pos += count * min_bytes
            else:
                for _ in range(count):
                    pos = _skip_value(elem_step, buf, pos, end, flexible)
        elif kind == "tags":
            if buf[pos] == 0:  # the usual case: no tagged fields
                pos += 1
            else:
                pos = _tags(detail, buf, pos, end)
        elif flexible and buf[pos] < 0x80:  # a compact length in one byte: n + 1, 0 is null
            pos += buf[pos] or 1
        else:
            pos = _skip_value(kind, buf, pos, end, flexible)
        if pos > end:
            raise _Stop
    return pos


def _skip_value(
    kind: str, buf: bytes | bytearray | memoryview, pos: int, end: int, flexible: bool
) -> int:
    if flexible:
        n, pos = _uvarint(buf, pos, end)
        return pos + max(0, n - 1)
    if kind == "string":
        (n,) = _I16.unpack_from(buf, pos)
        return pos + 2 + max(0, int(n))
    (n,) = _I32.unpack_from(buf, pos)
    return pos + 4 + max(0, int(n))


def _count(
    buf: bytes | bytearray | memoryview, pos: int, end: int, flexible: bool
) -> tuple[int, int]:
    if flexible:
        n, pos = _uvarint(buf, pos, end)
        return n - 1, pos
    (n,) = _I32.unpack_from(buf, pos)
    return int(n), pos + 4


def _tags(plans: dict[int, _Plan], buf: bytes | bytearray | memoryview, pos: int, end: int) -> int:
    count, pos = _uvarint(buf, pos, end)
    for _ in range(count):
        tag, pos = _uvarint(buf, pos, end)
        size, pos = _uvarint(buf, pos, end)
        if pos + size > end:
            raise _Stop
        plan = plans.get(tag)
        if plan is not None:
            _walk(plan, buf, pos, pos + size)
        pos += size
    return pos


def _uvarint(buf: bytes | bytearray | memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 28:
            raise _Stop
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _plan(cls: type[Any]) -> _Plan:
    plan = _plans.get(cls)
    if plan is None:
        plan = _build(cls)
        _plans[cls] = plan
    return plan


def _build(cls: type[Any]) -> _Plan:
    flexible = bool(cls.__flexible__)
    steps: list[_Step] = []
    tagged: dict[int, _Plan] = {}
    min_bytes = 1 if flexible else 0  # the tagged-fields count
    has_arrays = False
    for f in dataclasses.fields(cls):
        shape = classify_field(f)
        tag = get_field_tag(f)
        if tag is not None:
            if isinstance(shape, EntityField) and _plan(shape.type_).has_arrays:
                tagged[int(tag)] = _plan(shape.type_)
                has_arrays = True
            elif isinstance(shape, EntityTupleField | PrimitiveTupleField):
                raise TypeError(f"{cls.__name__}.{f.name}: tagged arrays are not walked")
            continue
        if isinstance(shape, EntityTupleField):
            elem = _plan(shape.type_)
            if elem.min_bytes < 1:
                raise TypeError(f"{cls.__name__}.{f.name}: elements of no bytes")
            steps.append(("array", f.name, (elem.min_bytes, None, elem)))
            has_arrays = True
        elif isinstance(shape, PrimitiveTupleField):
            kafka_type = get_schema_field_type(f)
            if kafka_type in _FIXED_BYTES:
                steps.append(("array", f.name, (_FIXED_BYTES[kafka_type], None, None)))
            else:
                step = _value_kind(cls, f.name, kafka_type)
                steps.append(("array", f.name, (1 if flexible else 2, step, None)))
            has_arrays = True
        elif isinstance(shape, PrimitiveField):
            kafka_type = get_schema_field_type(f)
            if kafka_type in _FIXED_BYTES:
                size = _FIXED_BYTES[kafka_type]
                if steps and steps[-1][0] == "fixed":
                    steps[-1] = ("fixed", steps[-1][1], steps[-1][2] + size)
                else:
                    steps.append(("fixed", f.name, size))
                min_bytes += size
                continue
            steps.append((_value_kind(cls, f.name, kafka_type), f.name, None))
        else:
            # A struct inline (not in an array): no served request has one; refuse rather
            # than guess its encoding.
            raise TypeError(f"{cls.__name__}.{f.name}: inline structs are not walked")
        min_bytes += 1 if flexible else (4 if steps[-1][0] in ("array", "bytes") else 2)
    if flexible:
        steps.append(("tags", "", tagged))
    return _Plan(flexible, tuple(steps), min_bytes, has_arrays)


def _value_kind(cls: type[Any], name: str, kafka_type: str) -> str:
    if kafka_type in _STRING_TYPES:
        return "string"
    if kafka_type in _BYTES_TYPES:
        return "bytes"
    raise TypeError(f"{cls.__name__}.{name}: kafka type {kafka_type!r} is not walked")
