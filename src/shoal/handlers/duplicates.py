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
    keys = [key(item) for item in items]
    counts = Counter(k for k in keys if k is not None)  # keeps first-appearance order
    kept = [item for item, k in zip(items, keys, strict=True) if k is None or counts[k] == 1]
    return kept, [k for k, n in counts.items() if n > 1]
