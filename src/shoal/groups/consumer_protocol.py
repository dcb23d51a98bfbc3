"""Just enough of the consumer protocol's subscription format to learn a member's topics
(OffsetDelete refuses to drop commits of subscribed topics)."""

from __future__ import annotations

import struct

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
TOPICS_MAX = 100_000


def subscription_topics(data: bytes) -> set[str] | None:
    """Topics of a ConsumerProtocolSubscription (any version: the topic array comes first
    after the version), or None when the bytes do not parse."""
    try:
        pos = 0
        (version,) = _I16.unpack_from(data, pos)
        pos += 2
        if version < 0:
            return None
        (count,) = _I32.unpack_from(data, pos)
        pos += 4
        if not 0 <= count <= TOPICS_MAX:
            return None
        topics: set[str] = set()
        for _ in range(count):
            (length,) = _I16.unpack_from(data, pos)
            pos += 2
            if length < 0 or pos + length > len(data):
                return None
            topics.add(data[pos : pos + length].decode("utf-8"))
            pos += length
        return topics
    except (struct.error, UnicodeDecodeError):
        return None
