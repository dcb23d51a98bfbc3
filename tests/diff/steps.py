"""What the differential suite sends: a `Case` is a sequence of `Step`s sent in order on one
connection to one broker, then the same sequence to the other. A step builds its request from
`Vars`, the case's state on that broker (ids an earlier answer gave: member ids, generations,
producer ids, the node id), so each broker gets requests that name its own ids. Steps with
`compare=False` only prepare (wait for a topic's leader, for a coordinator); every other answer
is diffed. The builders are in `requests.py` and `group_requests.py`, the cases in `cases.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import requests
from tests.diff.compare import Ignore

Vars = dict[str, Any]
Builder = Callable[[Vars], Any]

# Answers of a coordinator still starting: not available, loading, not (yet) the coordinator.
RETRIABLE_COORDINATOR = frozenset({14, 15, 16})


@dataclass(frozen=True)
class Step:
    label: str
    build: Builder
    # Saves ids of the answer into the case's Vars for later steps.
    keep: Callable[[Vars, Any], None] | None = None
    compare: bool = True
    # Resend until the answer satisfies this (a broker still creating a topic): prepare steps.
    until: Callable[[Any], bool] | None = None


@dataclass(frozen=True)
class Case:
    name: str
    steps: tuple[Step, ...]
    # Paths this case leaves out of its comparison besides compare.IGNORE, each with its reason.
    ignore: tuple[Ignore, ...] = ()


def msg(api: ApiKey, version: int, cls: type[Any], **fields: Any) -> Any:
    return requests(api, version).make(cls, **fields)


def resolve(x: Any, v: Vars) -> Any:
    """A step argument: a value, or a function of the case's Vars."""
    return x(v) if callable(x) else x
