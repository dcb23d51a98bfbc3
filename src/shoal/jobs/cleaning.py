"""What the log cleaner of compacted topics decides, apart from its I/O.

Kafka's algorithm (LogCleaner), with Shoal's index rows in place of segments: the *dirty*
section of a partition is what was written since the last cleaning ([cleaned_to, end)); a map
of the latest offset of every key in it is built (`KeyMap`); then the whole log up to `end` is
rewritten keeping a record only if no later record of its key is in the map
(`kept_deltas`). Records of the clean section are unique per key already, so a map of the
dirty section alone decides them too. Tombstones (null values) go once their timestamp is
older than `delete.retention.ms` (Kafka counts from the cleaning that first kept them; here
from the record's own timestamp, so a tombstone produced with an old CreateTime goes at the
first cleaning).

When a partition is due (`is_due`): as Kafka's `min.cleanable.dirty.ratio`, measured in offsets
(dirty offsets over all offsets from the log start), or when the oldest dirty batch has waited
`max.compaction.lag.ms`; `min.compaction.lag.ms` keeps recent records out of the dirty section
(`cleanable_before_ms`).

Bounds: the key map holds at most `KEY_MAP_ENTRIES_MAX` keys, by a 16-byte digest (as Kafka's
offset map keeps a hash of each key); when it fills, the dirty section ends at the batch that
did not fit and the next cleaning goes on from there.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shoal.meta.store import TopicInfo
from shoal.protocol.record_filter import RecordKeyInfo

LONG_MAX = (1 << 63) - 1
# About 100 bytes per entry in a Python dict of 16-byte keys: 40 MB at most.
KEY_MAP_ENTRIES_MAX = 400_000


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """A compacted topic's cleaner configs (Kafka's names and defaults)."""

    delete_retention_ms: int = 86_400_000
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    min_cleanable_dirty_ratio: float = 0.5

    @classmethod
    def of(cls, topic: TopicInfo) -> CleanerConfig | None:
        """The topic's configs, None when its cleanup.policy has no `compact`."""
        if "compact" not in topic.cleanup_policies:
            return None
        configs, d = topic.configs, cls()
        return cls(
            delete_retention_ms=_int(configs.get("delete.retention.ms"), d.delete_retention_ms),
            min_compaction_lag_ms=_int(
                configs.get("min.compaction.lag.ms"), d.min_compaction_lag_ms
            ),
            max_compaction_lag_ms=_int(
                configs.get("max.compaction.lag.ms"), d.max_compaction_lag_ms
            ),
            min_cleanable_dirty_ratio=_float(
                configs.get("min.cleanable.dirty.ratio"), d.min_cleanable_dirty_ratio
            ),
        )

    def cleanable_before_ms(self, now_ms: int) -> int:
        """Batches whose largest timestamp is at or after this stay dirty-but-uncleanable."""
        return now_ms - self.min_compaction_lag_ms + 1

    def is_due(
        self,
        log_start: int,
        cleaned_to: int,
        high_watermark: int,
        first_dirty_timestamp_ms: int | None,
        now_ms: int,
    ) -> bool:
        dirty = high_watermark - max(cleaned_to, log_start)
        if dirty <= 0:
            return False
        if dirty >= self.min_cleanable_dirty_ratio * (high_watermark - log_start):
            return True
        return (
            first_dirty_timestamp_ms is not None
            and now_ms - first_dirty_timestamp_ms >= self.max_compaction_lag_ms
        )


class KeyMap:
    """The latest offset of each key of a dirty section, bounded in entries."""

    def __init__(self, entries_max: int = KEY_MAP_ENTRIES_MAX) -> None:
        self.entries_max = entries_max
        self._latest: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._latest)

    @staticmethod
    def _digest(key: bytes) -> bytes:
        return hashlib.blake2b(key, digest_size=16).digest()

    def fits(self, records: list[RecordKeyInfo]) -> bool:
        """Whether every key of one batch can be put (new keys within the bound)."""
        new = {self._digest(r.key) for r in records if r.key is not None}
        new.difference_update(self._latest)
        return len(self._latest) + len(new) <= self.entries_max

    def put_batch(self, base_offset: int, records: list[RecordKeyInfo]) -> None:
        for r in records:
            if r.key is not None:
                self._latest[self._digest(r.key)] = base_offset + r.offset_delta

    def kept_deltas(
        self, base_offset: int, records: list[RecordKeyInfo], expire_tombstones_before_ms: int
    ) -> set[int]:
        """The offset deltas of the batch's records a cleaning keeps: those no later record of
        their key supersedes, except tombstones older than the cutoff. Keyless records (which
        Produce refuses in a compacted topic, but an older policy may have let in) stay."""
        kept: set[int] = set()
        for r in records:
            if r.key is not None:
                latest = self._latest.get(self._digest(r.key))
                if latest is not None and latest > base_offset + r.offset_delta:
                    continue
                if r.is_tombstone and r.timestamp_ms < expire_tombstones_before_ms:
                    continue
            kept.add(r.offset_delta)
        return kept


def _int(value: str | None, default: int) -> int:
    try:
        return default if value is None else int(value)
    except ValueError:
        return default  # configs are validated when set


def _float(value: str | None, default: float) -> float:
    try:
        return default if value is None else float(value)
    except ValueError:
        return default
