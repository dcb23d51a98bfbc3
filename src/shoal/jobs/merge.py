"""What file compaction decides, apart from its I/O: which files to merge, and the merged file.

**Which files** (`plan_merges`). Files are merged by level: a producer's flush writes level 0;
merging files of level n writes level n + 1. A level's files, oldest first, are cut into runs
of at most `fan_in` files and at most `target_bytes` in all; a run is merged once it is *full*
(the next file would not fit, or it has `fan_in` files), or, for the youngest run of a level,
once it holds half the target or the level has had no new file for `idle_ms`. When no
candidate at all is younger than `idle_ms`, the levels merge as one. Files of half the target
or more are never chosen again (`compaction_candidates(size_below=target / 2)`).

Why levels and not "merge whatever is small": a topic written slowly makes tiny files forever.
Merging the growing tail with each new file would rewrite it once per cycle (quadratic bytes);
with levels each byte is rewritten once per level, log_fan_in(target / flush size) times (3 for
32 files of 64 KiB up to 64 MiB), and at most fan_in - 1 files wait at each level.

**The merged file** (`merge_rows`): the live rows' batches, copied as they are (bytes, never
decoded), each partition's batches contiguous and in offset order, with a footer like a
writer's. A batch whose bytes fail their checks (length, header, CRC-32C) is left where it is,
in its old file, and counted: compaction must never spread a corrupt batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from crc32c import crc32c

from shoal.meta.store import CompactionFile, FileRow, RowMove
from shoal.protocol.batch import CRC_START, HEADER_BYTES, parse_header
from shoal.write.segment_format import BatchEntry, encode_segment

# The fan-in of a merge: WarpStream's compaction levels merge 32 files too.
FAN_IN_DEFAULT = 32


def plan_merges(
    files: list[CompactionFile],
    *,
    target_bytes: int,
    fan_in: int = FAN_IN_DEFAULT,
    idle_ms: int,
    now_ms: int,
) -> list[list[CompactionFile]]:
    """Runs of files to merge, each of one level and oldest first (see the module doc).
    `files` are the candidates in the order the store recorded them."""
    if target_bytes <= 0 or fan_in < 2:
        raise ValueError("compaction needs a positive target and a fan-in of at least 2")
    by_level: dict[int, list[CompactionFile]] = {}
    if files and now_ms - max(f.created_at_ms for f in files) >= idle_ms:
        # Nothing new for a while: the levels have nothing to protect, so they merge as one
        # (a quiet cluster settles to the fewest files, not to one per level).
        by_level[0] = list(files)
    else:
        for f in files:
            by_level.setdefault(f.level, []).append(f)
    plans: list[list[CompactionFile]] = []
    for _, level_files in sorted(by_level.items()):
        run: list[CompactionFile] = []
        run_bytes = 0
        for f in level_files:
            if run and (run_bytes + f.size > target_bytes or len(run) >= fan_in):
                if len(run) >= 2:
                    plans.append(run)
                run, run_bytes = [], 0
            run.append(f)
            run_bytes += f.size
        if len(run) >= 2 and (
            run_bytes * 2 >= target_bytes
            or len(run) >= fan_in
            or now_ms - max(f.created_at_ms for f in run) >= idle_ms
        ):
            plans.append(run)
    return plans


@dataclass(slots=True)
class Merged:
    data: bytes  # the new segment file
    moves: list[RowMove]  # where each copied row is in it
    skipped: list[FileRow] = field(default_factory=list)  # rows whose bytes failed a check


def merge_rows(objects: Mapping[str, bytes], rows: list[FileRow]) -> Merged:
    """The merged file of `rows` (ordered by topic, partition and offset), reading each row's
    bytes from `objects[row.file_id]` (the whole old file)."""
    entries: list[BatchEntry] = []
    copied: list[FileRow] = []
    skipped: list[FileRow] = []
    for row in rows:
        data = objects.get(row.file_id)
        entry = None if data is None else _entry(row, data)
        if entry is None:
            skipped.append(row)
            continue
        entries.append(entry)
        copied.append(row)
    if not entries:
        return Merged(b"", [], skipped)
    data, placed = encode_segment(entries)
    moves = [RowMove(row, p.byte_pos, p.byte_len) for row, p in zip(copied, placed, strict=True)]
    return Merged(data, moves, skipped)


def _entry(row: FileRow, data: bytes) -> BatchEntry | None:
    """The row's batch as a segment entry, or None when its bytes are not the batch the row
    describes (a truncated object, a corrupt batch)."""
    end = row.byte_pos + row.byte_len
    if row.byte_pos < 0 or row.byte_len < HEADER_BYTES or end > len(data):
        return None
    view = memoryview(data)[row.byte_pos : end]
    header = parse_header(view)
    if (
        header.size != row.byte_len
        or header.last_offset_delta != row.last_offset - row.base_offset
        or crc32c(view[CRC_START:]) != header.crc
    ):
        return None
    return BatchEntry(
        row.topic,
        row.partition,
        view,
        header.last_offset_delta + 1,
        header.base_timestamp,
        header.max_timestamp,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        header.attributes,
    )
