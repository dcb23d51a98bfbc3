"""Plain-text tables for command-line output: aligned columns, numbers on the right.

No terminal width handling: rows are never wrapped or cut, so a line can be grepped or cut
by column whatever the terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

EMPTY = "-"  # how a missing value (None) is shown, as Kafka's tools do
GAP = "  "


def cell(value: object) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    # A cell is one line whatever it holds: a value with a newline would break the columns.
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _numeric(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    right: Iterable[int] | None = None,
) -> str:
    """Headers and rows as aligned text, without a trailing newline.

    Columns whose values are all numbers (None aside) are right-aligned unless `right` names
    the right-aligned column indexes explicitly. Trailing spaces are stripped from each line.
    """
    width = len(headers)
    raw = [list(r) for r in rows]
    for i, r in enumerate(raw):
        if len(r) != width:
            raise ValueError(f"row {i} has {len(r)} cells, the table has {width} columns")
    if right is None:
        right_cols = {
            c
            for c in range(width)
            if any(r[c] is not None for r in raw)
            and all(r[c] is None or _numeric(r[c]) for r in raw)
        }
    else:
        right_cols = set(right)
    text = [[cell(v) for v in r] for r in raw]
    widths = [max([len(headers[c])] + [len(r[c]) for r in text]) for c in range(width)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cells[c].rjust(widths[c]) if c in right_cols else cells[c].ljust(widths[c])
            for c in range(width)
        ]
        return GAP.join(parts).rstrip()

    return "\n".join([line(list(headers)), *(line(r) for r in text)])


def format_pairs(pairs: Sequence[tuple[str, object]]) -> str:
    """`key: value` lines with the values aligned (a record shown vertically)."""
    if not pairs:
        return ""
    pad = max(len(k) for k, _ in pairs) + 1
    return "\n".join(f"{(k + ':').ljust(pad)} {cell(v)}".rstrip() for k, v in pairs)
