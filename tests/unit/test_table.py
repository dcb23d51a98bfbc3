from __future__ import annotations

import pytest

from shoal.tools.table import format_pairs, format_table


def test_columns_align_and_numbers_go_right() -> None:
    text = format_table(
        ("TOPIC", "PARTITION", "LAG"),
        [("orders", 0, 5), ("payments-eu", 12, 12345)],
    )
    assert text.splitlines() == [
        "TOPIC        PARTITION    LAG",
        "orders               0      5",
        "payments-eu         12  12345",
    ]


def test_missing_values_show_as_dash_and_keep_a_column_numeric() -> None:
    text = format_table(("P", "OFFSET"), [(0, None), (1, 1000)])
    assert text.splitlines() == ["P  OFFSET", "0       -", "1    1000"]


def test_mixed_column_is_left_aligned_and_lines_have_no_trailing_spaces() -> None:
    text = format_table(("ID", "NOTE"), [(1, "x"), ("abc", None), (2, "")])
    lines = text.splitlines()
    assert lines[1] == "1    x"
    assert lines[2] == "abc  -"
    assert lines[3] == "2"
    assert all(line == line.rstrip() for line in lines)


def test_explicit_right_columns_override_detection() -> None:
    text = format_table(("A", "B"), [("x", "yy"), ("zzz", "w")], right=[1])
    assert text.splitlines() == ["A     B", "x    yy", "zzz   w"]


def test_header_only_table() -> None:
    assert format_table(("GROUP", "STATE"), []) == "GROUP  STATE"


def test_newlines_inside_a_cell_cannot_break_rows() -> None:
    text = format_table(("K",), [("a\nb",)])
    assert text.splitlines() == ["K", "a\\nb"]


def test_booleans_are_words_not_numbers() -> None:
    text = format_table(("NAME", "OK"), [("a", True), ("b", False)])
    assert text.splitlines() == ["NAME  OK", "a     yes", "b     no"]


def test_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="row 1 has 1 cells"):
        format_table(("A", "B"), [("x", 1), ("y",)])


def test_pairs_align_values() -> None:
    assert format_pairs([("Group", "g"), ("Total lag", 10), ("Protocol", None)]) == (
        "Group:     g\nTotal lag: 10\nProtocol:  -"
    )
    assert format_pairs([]) == ""
