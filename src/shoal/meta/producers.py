"""The InitProducerId decision, shared by both backends.

Each backend looks up the one `producers` row the request names (`lookup`), asks `decide_init`
what to do, and carries the answer out in the same transaction. Kafka's rules:

- No transactional id: always a new id at epoch 0, whatever (producer_id, epoch) the request
  names (Kafka's coordinator "blindly" allocates here; an idempotent client bumps its epoch
  itself, and the differential suite saw Kafka 4.4 answer epoch 0 to such a request).
- Transactional id: the first call maps it to a new id at epoch 0; later calls bump the epoch,
  fencing older instances. If (producer_id, epoch) is given and is not the current pair, the
  caller is fenced (ProducerFencedError).
- An epoch that cannot be bumped any more (EPOCH_MAX) moves to a new id at epoch 0: the old id
  gives up its transactional id first (`retire`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from shoal.meta.store import ProducerFencedError

# Kafka refuses to bump an epoch at or past Short.MAX_VALUE - 1 and allocates a new id instead.
EPOCH_MAX = 32766


@dataclass(frozen=True, slots=True)
class ProducerRow:
    """The stored (producer id, epoch) a request is checked against."""

    producer_id: int
    epoch: int


class Lookup(Enum):
    """Which `producers` row the decision needs."""

    NONE = "none"  # nothing to look up: allocate
    BY_TRANSACTIONAL_ID = "transactional_id"  # the row mapped to the transactional id


class Action(Enum):
    ALLOCATE = "allocate"  # insert a new producer id at epoch 0 (with the transactional id)
    BUMP = "bump"  # set the existing row's epoch to `epoch`
    RETIRE_AND_ALLOCATE = "retire"  # release the transactional id of `producer_id`, allocate


@dataclass(frozen=True, slots=True)
class InitDecision:
    action: Action
    producer_id: int = -1  # the existing row (BUMP, RETIRE_AND_ALLOCATE)
    epoch: int = 0  # the new epoch (BUMP)


_ALLOCATE = InitDecision(Action.ALLOCATE)


def lookup(transactional_id: str | None) -> Lookup:
    return Lookup.NONE if transactional_id is None else Lookup.BY_TRANSACTIONAL_ID


def decide_init(
    transactional_id: str | None,
    producer_id: int,
    producer_epoch: int,
    current: ProducerRow | None,
) -> InitDecision:
    """What InitProducerId does, given the row `lookup` named (None when there is none).
    Raises ProducerFencedError."""
    if transactional_id is None or current is None:
        return _ALLOCATE
    if producer_id >= 0 and (producer_id, producer_epoch) != (current.producer_id, current.epoch):
        raise ProducerFencedError(
            f"transactional id {transactional_id!r} is at producer {current.producer_id} epoch"
            f" {current.epoch}, not {producer_id}/{producer_epoch}"
        )
    return _bump(current)


def _bump(current: ProducerRow) -> InitDecision:
    if current.epoch >= EPOCH_MAX:
        return InitDecision(Action.RETIRE_AND_ALLOCATE, current.producer_id)
    return InitDecision(Action.BUMP, current.producer_id, current.epoch + 1)
