"""Kafka wire primitives for the hand-written encoders (the rest goes through kio).

Each function returns the bytes of one field so callers can collect parts and join them once.
"""

from __future__ import annotations

import struct
import uuid
from typing import Final

I16: Final = struct.Struct(">h")
I32: Final = struct.Struct(">i")
I64: Final = struct.Struct(">q")

NULL_UUID: Final = bytes(16)
EMPTY_TAGGED_FIELDS: Final = b"\x00"
_SMALL_UVARINTS: Final = tuple(bytes((i,)) for i in range(128))


def uvarint(value: int) -> bytes:
    """Unsigned varint (flexible versions' lengths and counts)."""
    if value < 0x80:
        return _SMALL_UVARINTS[value]
    if value < 0x4000:  # record sets up to 16 KiB: two bytes, no loop
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def string(value: str, flexible: bool) -> bytes:
    data = value.encode()
    if flexible:
        return uvarint(len(data) + 1) + data
    return I16.pack(len(data)) + data


def nullable_string(value: str | None, flexible: bool) -> bytes:
    if value is None:
        return b"\x00" if flexible else b"\xff\xff"
    return string(value, flexible)


def array_length(count: int | None, flexible: bool) -> bytes:
    """Length of an array; None is the null array."""
    if count is None:
        return b"\x00" if flexible else b"\xff\xff\xff\xff"
    if flexible:
        return uvarint(count + 1)
    return I32.pack(count)


def bytes_length(size: int | None, flexible: bool) -> bytes:
    """Length prefix of a (nullable) bytes/records field; None is null."""
    if size is None:
        return b"\x00" if flexible else b"\xff\xff\xff\xff"
    if flexible:
        return uvarint(size + 1)
    return I32.pack(size)


def uuid_bytes(value: uuid.UUID | None) -> bytes:
    return NULL_UUID if value is None else value.bytes
