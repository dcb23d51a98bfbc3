"""Items named more than once in one request. Kafka refuses such a name, not the request: the
other items are carried out, and each repeated name gets one INVALID_REQUEST answer, after the
others' (ControllerApis does so for CreateTopics, CreatePartitions and DeleteTopics; the
differential suite compares it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def duplicates(items: Iterable[K]) -> set[K]:
    return {item for item, n in Counter(items).items() if n > 1}


def without_repeats(items: Sequence[T], key: Callable[[T], K | None]) -> tuple[list[T], list[K]]:
    """(the items whose key is not repeated, or that have none, in request order; each repeated
    key once, in order of first appearance)."""
    repeated = duplicates(k for k in map(key, items) if k is not None)
    kept = [item for item in items if key(item) not in repeated]
    seen: dict[K, None] = {}
    for item in items:
        k = key(item)
        if k is not None and k in repeated:
            seen.setdefault(k)
    return kept, list(seen)
