"""Items named more than once in one request (Kafka refuses each copy, not the request)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


def duplicates(items: Iterable[T]) -> set[T]:
    return {item for item, n in Counter(items).items() if n > 1}
