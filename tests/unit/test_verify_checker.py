"""The verify checker fails on each kind of violation, built by hand, and passes a clean run.

A checker is trusted only once it has been shown to fail on a history that loses, duplicates or
reorders data: every test below but the clean one must make it fail."""

from __future__ import annotations

from shoal.verify.checker import check
from shoal.verify.history import History, Outcome, Read, Write, value

PARTITIONS = 2


def clean() -> History:
    """Two producers, two partitions, four values each: every ack read back where it said."""
    h = History(partitions=PARTITIONS)
    next_offset = [0] * PARTITIONS
    for seq in range(4):
        for producer in range(2):
            p = seq % PARTITIONS
            o = next_offset[p]
            next_offset[p] += 1
            h.writes.append(Write(producer, seq, p, 0.1 * seq, Outcome.OK, o, 0.1 * seq + 0.01))
            h.final.setdefault(p, []).append(Read(p, o, value(producer, seq)))
            h.live_reads.append(Read(p, o, value(producer, seq), 0.2 * seq))
    h.final_end = {p: next_offset[p] for p in range(PARTITIONS)}
    return h


def test_clean_history_passes() -> None:
    verdict = check(clean())
    assert verdict.ok, verdict.examples
    assert verdict.acked == 8 and verdict.read == 8 and verdict.live_read == 8
    assert verdict.indeterminate == 0


def test_lost_value_is_detected() -> None:
    h = clean()
    # The broker acked 1:3 (partition 1, offset 3) but its log ends before it.
    h.final[1] = [r for r in h.final[1] if r.value != "1:3"]
    h.live_reads = [r for r in h.live_reads if r.value != "1:3"]
    h.final_end[1] = 3
    verdict = check(h)
    assert not verdict.ok
    assert verdict.lost == 1 and "1:3" in verdict.examples["lost"][0]


def test_duplicated_value_is_detected() -> None:
    h = clean()
    end = h.final_end[0]
    h.final[0].append(Read(0, end, "0:0"))
    h.final_end[0] = end + 1
    verdict = check(h)
    assert not verdict.ok
    assert verdict.duplicated == 1


def test_duplicate_seen_only_by_a_live_consumer_is_detected() -> None:
    h = clean()
    h.live_reads.append(Read(1, 0, "0:0"))  # 0:0 is at 0@0; a live read found it at 1@0 too
    verdict = check(h)
    assert verdict.duplicated == 1
    assert verdict.inconsistent_offsets >= 1  # and 1@0 then held two values


def test_reordered_values_are_detected() -> None:
    h = clean()
    # Swap the values at offsets 0 and 2 of partition 0 (0:0 and 0:2), acks included.
    reads = {r.offset: r for r in h.final[0]}
    swapped = {0: reads[2].value, 2: reads[0].value}
    h.final[0] = [Read(0, o, swapped.get(o, r.value)) for o, r in sorted(reads.items())]
    h.live_reads = list(h.final[0])
    h.writes = [
        Write(w.producer, w.seq, w.partition, w.sent_s, w.outcome,
              {0: 2, 2: 0}.get(w.offset or 0, w.offset) if w.partition == 0 else w.offset,
              w.acked_s)
        for w in h.writes
    ]  # fmt: skip
    verdict = check(h)
    assert not verdict.ok
    assert verdict.reordered == 1, verdict.examples
    assert verdict.inconsistent_offsets == 0 and verdict.lost == 0


def test_ack_at_another_offset_than_read_is_detected() -> None:
    h = clean()
    w = h.writes[0]
    h.writes[0] = Write(w.producer, w.seq, w.partition, w.sent_s, w.outcome, 99, w.acked_s)
    verdict = check(h)
    assert not verdict.ok
    assert verdict.inconsistent_offsets >= 1
    assert any("acked at 0@99" in e for e in verdict.examples["inconsistent_offsets"])


def test_two_values_at_one_offset_are_detected() -> None:
    h = clean()
    # Two acks for the same position: a second write acked at 0@0 too, and read there.
    h.writes.append(Write(7, 0, 0, 0.5, Outcome.OK, 0, 0.6))
    h.live_reads.append(Read(0, 0, "7:0"))
    verdict = check(h)
    assert not verdict.ok
    assert any("0@0 holds" in e for e in verdict.examples["inconsistent_offsets"])


def test_gap_in_offsets_is_detected() -> None:
    h = clean()
    # The log's end is 4 but offset 1 was never returned (nor acked: an unexplained hole).
    h.final[0] = [r for r in h.final[0] if r.offset != 1]
    h.writes = [w for w in h.writes if not (w.partition == 0 and w.offset == 1)]
    h.live_reads = [r for r in h.live_reads if not (r.partition == 0 and r.offset == 1)]
    verdict = check(h)
    assert not verdict.ok
    assert verdict.inconsistent_offsets == 1 and verdict.lost == 0
    assert "not read" in verdict.examples["inconsistent_offsets"][0]


def test_value_in_another_partition_is_detected() -> None:
    h = clean()
    w = h.writes[0]  # 0:0, sent to partition 0: pretend it was sent to partition 1
    h.writes[0] = Write(w.producer, w.seq, 1, w.sent_s, Outcome.ERROR, error="timed out")
    verdict = check(h)
    assert not verdict.ok
    assert any("sent to partition 1" in e for e in verdict.examples["inconsistent_offsets"])


def test_unexpected_value_is_detected() -> None:
    h = clean()
    end = h.final_end[1]
    h.final[1].append(Read(1, end, "garbage"))
    h.final_end[1] = end + 1
    verdict = check(h)
    assert not verdict.ok and verdict.unexpected == 1


def test_indeterminate_writes_may_appear_or_not() -> None:
    h = clean()
    end = h.final_end[0]
    h.writes.append(Write(0, 4, 0, 1.0, Outcome.ERROR, error="timed out"))  # it did happen
    h.final[0].append(Read(0, end, "0:4"))
    h.final_end[0] = end + 1
    h.writes.append(Write(1, 4, 0, 1.0, Outcome.UNKNOWN))  # it did not
    verdict = check(h)
    assert verdict.ok, verdict.examples
    assert verdict.indeterminate == 2 and verdict.indeterminate_read == 1
