"""docs/apis.md agrees with the handler registry and with kio's list of APIs."""

from __future__ import annotations

import re
from pathlib import Path

import shoal.agent  # noqa: F401  (importing the agent registers every handler)
from shoal.handlers.base import REGISTRY
from shoal.protocol.apis import ApiKey
from shoal.protocol.messages import versions_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "apis.md"


def _section(title: str) -> list[list[str]]:
    text = DOC.read_text()
    body = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    return [c for c in cells if c[0] not in ("API", "---")]


def _versions(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    assert m, text
    return int(m.group(1)), int(m.group(2) or m.group(1))


def test_served_table_is_the_registry() -> None:
    rows = _section("Served")
    documented = {
        int(key): (name, _versions(served), _versions(known))
        for name, key, served, known, _ in rows
    }
    assert len(documented) == len(rows), "an API is listed twice"
    registered = {
        int(s.api_key): (
            s.name,
            (s.min_version, s.max_version),
            (versions_of(s.api_key)[0], versions_of(s.api_key)[-1]),
        )
        for s in REGISTRY.values()
    }
    assert documented == registered


def test_every_other_api_is_listed_as_not_served_with_a_reason() -> None:
    rows = _section("Not served")
    listed = {int(key): name for name, key, _ in rows}
    assert len(listed) == len(rows), "an API is listed twice"
    assert all(reason for _, _, reason in rows)
    unserved = {int(k): k.api_name for k in ApiKey if k not in REGISTRY}
    assert listed == unserved
