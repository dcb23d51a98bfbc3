from __future__ import annotations

from collections import Counter

import pytest

from shoal.read.ring import Ring, block_key

KEYS = [block_key(f"segments/2026/11/26/{i:026d}.seg", i % 7) for i in range(10_000)]


@pytest.mark.parametrize("agents", range(3, 13))
def test_balance_within_ten_percent(agents: int) -> None:
    ring = Ring([f"agent-{i}" for i in range(agents)])
    counts = Counter(ring.owner(k) for k in KEYS)
    mean = len(KEYS) / agents
    assert len(counts) == agents
    assert all(abs(c - mean) <= 0.10 * mean for c in counts.values()), counts


@pytest.mark.parametrize("agents", [3, 6, 12])
def test_join_moves_only_keys_to_the_newcomer(agents: int) -> None:
    before = Ring([f"agent-{i}" for i in range(agents)])
    after = Ring([*before.members, "newcomer"])
    moved = [k for k in KEYS if before.owner(k) != after.owner(k)]
    assert all(after.owner(k) == "newcomer" for k in moved)
    # about 1/(N+1) of the keys move
    assert abs(len(moved) - len(KEYS) / (agents + 1)) <= 0.15 * len(KEYS) / (agents + 1)


@pytest.mark.parametrize("agents", [3, 6, 12])
def test_leave_moves_only_the_leavers_keys(agents: int) -> None:
    before = Ring([f"agent-{i}" for i in range(agents)])
    after = Ring([m for m in before.members if m != "agent-1"])
    for k in KEYS:
        if before.owner(k) != "agent-1":
            assert after.owner(k) == before.owner(k)


def test_empty_ring_raises() -> None:
    with pytest.raises(LookupError):
        Ring([]).owner(b"x")
