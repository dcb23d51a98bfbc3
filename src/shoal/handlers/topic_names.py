"""Kafka's rules for topic names (kafka.common.internals.Topic)."""

from __future__ import annotations

import re

_LEGAL = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def is_valid_topic_name(name: str | None) -> bool:
    return name is not None and name not in (".", "..") and bool(_LEGAL.match(name))
