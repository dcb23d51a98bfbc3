"""Send a case's steps to one broker over a raw socket and keep the decoded answers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tests.diff.compare import IGNORE, Divergence, diff, to_tree
from tests.diff.steps import Case, Vars
from tests.rawkafka import RawConnection

WAIT_S = 30.0


@dataclass(frozen=True)
class Answer:
    label: str
    tree: Any


def run_case(bootstrap: str, case: Case) -> list[Answer]:
    """The answers of the compared steps of `case`, sent in order on one connection."""
    conn = RawConnection(bootstrap, timeout_s=60.0)
    v: Vars = {}
    out: list[Answer] = []
    try:
        for step in case.steps:
            deadline = time.monotonic() + WAIT_S
            while True:
                resp = conn.call(step.build(v))
                if step.until is None or step.until(resp):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{case.name}: {step.label}: still {resp!r}")
                time.sleep(0.1)
            if step.keep is not None:
                step.keep(v, resp)
            if step.compare:
                out.append(Answer(step.label, to_tree(resp)))
    finally:
        conn.close()
    return out


def diff_case(case: Case, kafka: list[Answer], shoal: list[Answer]) -> list[Divergence]:
    """Divergences of two runs of `case`, each path prefixed by its step's label; the case's
    own ignore rules match that prefixed path."""
    assert [a.label for a in kafka] == [a.label for a in shoal]
    found = [
        Divergence(f"{k.label}: {d.path}", d.kafka, d.shoal)
        for k, s in zip(kafka, shoal, strict=True)
        for d in diff(k.tree, s.tree, IGNORE)
    ]
    return [d for d in found if not any(rule.matches(d.path) for rule in case.ignore)]
