"""The differential suite's comparer (tests/diff/compare.py) and its table of expected
divergences (tests/diff/expected.py): a comparer that missed differences, or a table that
matched too much, would let the suite against Apache Kafka pass whatever Shoal answered."""

from __future__ import annotations

from pathlib import Path

from tests.diff.compare import MISSING, Divergence, Ignore, diff, glob_match, version_differences
from tests.diff.expected import EXPECTED, VERSIONS, Expected, markdown, unexpected, unseen
from tests.unit.batchgen import make_batch

REPO = Path(__file__).resolve().parents[2]


def test_equal_trees_have_no_divergence_and_every_differing_leaf_is_one() -> None:
    tree = {"a": 1, "b": [1, 2], "c": {"d": "x"}}
    assert diff(tree, tree, ()) == []
    other = {"a": 2, "b": [1, 3, 4], "c": {"d": "x", "e": None}}
    assert [str(d) for d in diff(tree, other, ())] == [
        "a: kafka=1 shoal=2",
        "b[1]: kafka=2 shoal=3",
        f"b[2]: kafka={MISSING!r} shoal=4",
        f"c.e: kafka={MISSING!r} shoal=None",
    ]


def test_lists_of_named_elements_are_matched_by_name_not_position() -> None:
    kafka = {"topics": [{"name": "a", "error_code": 0}, {"name": "b", "error_code": 3}]}
    shoal = {"topics": [{"name": "b", "error_code": 3}, {"name": "a", "error_code": 42}]}
    assert [d.path for d in diff(kafka, shoal, ())] == ["topics[a].error_code"]
    dropped = {"topics": [{"name": "b", "error_code": 3}, {"name": "c", "error_code": 0}]}
    assert [d.path for d in diff(kafka, dropped, ())] == ["topics[a]", "topics[c]"]


def test_a_list_of_one_named_differently_is_compared_by_position() -> None:
    kafka = {"results": [{"resource_name": "1", "error_code": 0}]}
    shoal = {"results": [{"resource_name": "0", "error_code": 42}]}
    assert [d.path for d in diff(kafka, shoal, ())] == [
        "results[0].error_code",
        "results[0].resource_name",
    ]


def test_synonyms_keep_their_order() -> None:
    kafka = {"configs": [{"name": "x", "synonyms": [{"name": "x"}, {"name": "log.x"}]}]}
    shoal = {"configs": [{"name": "x", "synonyms": [{"name": "log.x"}, {"name": "x"}]}]}
    assert [d.path for d in diff(kafka, shoal, ())] == [
        "configs[x].synonyms[0].name",
        "configs[x].synonyms[1].name",
    ]


def test_ignored_paths_are_skipped_and_brackets_are_literal() -> None:
    rules = (Ignore("*.crc", "r"), Ignore("topics[*].id", "r"))
    kafka = {"records": [{"crc": 1, "base_offset": 0}], "topics": [{"name": "t", "id": 5}]}
    shoal = {"records": [{"crc": 2, "base_offset": 1}], "topics": [{"name": "t", "id": 6}]}
    assert [d.path for d in diff(kafka, shoal, rules)] == ["records[0].base_offset"]
    assert glob_match("topics[*].id", "topics[t].id")
    assert not glob_match("topics[*].id", "topics*.id")
    assert not glob_match("a", "ab")


def test_record_batches_compare_by_their_headers() -> None:
    from tests.diff.compare import to_tree

    one, two = make_batch([(b"k", b"v")]), make_batch([(b"k", b"v"), (b"k", b"w")])
    assert diff(to_tree(one, "records"), to_tree(one, "records"), ()) == []
    paths = {d.path for d in diff(to_tree(one, "records"), to_tree(two, "records"), ())}
    assert {"[0].record_count", "[0].last_offset_delta"} <= paths


def test_expected_divergences_match_only_their_case_and_pattern() -> None:
    entry = Expected("c", "step: topics[*].error_code", "why")
    hit = Divergence("step: topics[t].error_code", 3, 0)
    assert entry.matches("c", hit)
    assert not entry.matches("other", hit)
    assert not entry.matches("c", Divergence("step: topics[t].partitions", 3, 0))


def test_unexpected_and_unseen_keep_the_table_exact() -> None:
    case = EXPECTED[0].case
    listed = Divergence(EXPECTED[0].pattern.replace("*", "x"), 1, 2)
    stray = Divergence("no such step: error_code", 0, 1)
    assert unexpected(case, [listed, stray]) == [stray]
    assert EXPECTED[0] in unseen({case: [stray]})
    assert EXPECTED[0] not in unseen({case: [listed]})
    assert all(e.case == case for e in unseen({case: []}))  # cases that did not run: no claim


def test_version_differences_name_each_key_whose_range_differs() -> None:
    kafka = {0: (0, 13), 1: (4, 18), 18: (0, 5)}
    shoal = {0: (3, 13), 1: (4, 18), 60: (0, 1)}
    assert version_differences(kafka, shoal) == {
        0: ((0, 13), (3, 13)),
        18: ((0, 5), None),
        60: (None, (0, 1)),
    }


def test_every_divergence_has_a_reason_and_the_readme_shows_the_table() -> None:
    assert all(e.reason.strip() for e in EXPECTED)
    assert all(why.strip() for _, _, why in VERSIONS.values())
    readme = (REPO / "compat" / "diff" / "README.md").read_text()
    assert markdown() in readme, "regenerate the tables: python -m tests.diff.expected"
