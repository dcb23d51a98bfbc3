"""Consistent hashing by highest random weight (rendezvous hashing).

Each key goes to the member with the highest hash of (member, key). Adding a member moves only
the keys it now wins (about 1/N); removing one moves only the keys it held. No virtual nodes to
tune, and balance over many keys is within a few percent. Lookups cost O(members) hashes, which
is fine for the tens of agents a zone holds; `owner` results for hot keys are cheap to cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _weight(member: str, key: bytes) -> int:
    digest = hashlib.blake2b(key, digest_size=8, key=member.encode()[:64]).digest()
    return int.from_bytes(digest, "big")


class Ring:
    def __init__(self, members: Sequence[str]) -> None:
        self.members: tuple[str, ...] = tuple(sorted(set(members)))

    def __len__(self) -> int:
        return len(self.members)

    def owner(self, key: bytes) -> str:
        if not self.members:
            raise LookupError("empty ring")
        best = self.members[0]
        best_weight = -1
        for member in self.members:
            w = _weight(member, key)
            if w > best_weight:
                best, best_weight = member, w
        return best


def block_key(file_key: str, block_index: int) -> bytes:
    return f"{file_key}#{block_index}".encode()
