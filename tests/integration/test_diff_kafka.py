"""Differential conformance: the request sequences of tests/diff/cases.py sent to a real Apache
Kafka 4.4 broker and to a Shoal agent on each backend, the answers compared field by field.

The divergences seen must be exactly those tests/diff/expected.py lists with their reasons (and
ApiVersions' ranges exactly its VERSIONS): a new divergence fails, and so does a listed one that
no longer occurs. Kafka runs once for the module, its answers are kept; each backend gets one
agent for all cases, as each case uses topic and group names of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess
from tests.backends import agent_on_backend
from tests.diff.cases import CASES
from tests.diff.compare import Divergence, version_differences, version_ranges
from tests.diff.expected import VERSIONS, unexpected, unseen
from tests.diff.runner import Answer, diff_case, run_case
from tests.kafka_dist import running_kafka

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def kafka_answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Answer]]:
    with running_kafka(tmp_path_factory.mktemp("diff-kafka")) as broker:
        return {case.name: run_case(broker.bootstrap, case) for case in CASES}


@pytest.fixture(scope="module")
def shoal_agent(
    tmp_path_factory: pytest.TempPathFactory, backend_kind: str, request: pytest.FixtureRequest
) -> Iterator[AgentProcess]:
    data: Path = tmp_path_factory.mktemp("diff-shoal")
    with agent_on_backend(backend_kind, request, data, ["--flush-interval-ms", "20"]) as proc:
        yield proc


def test_shoal_answers_as_kafka_but_for_the_listed_divergences(
    kafka_answers: dict[str, list[Answer]], shoal_agent: AgentProcess
) -> None:
    seen: dict[str, list[Divergence]] = {}
    for case in CASES:
        seen[case.name] = diff_case(
            case, kafka_answers[case.name], run_case(shoal_agent.bootstrap, case)
        )
    new = [f"{name} | {d}" for name, ds in seen.items() for d in unexpected(name, ds)]
    gone = [f"{e.case} | {e.pattern}" for e in unseen(seen)]
    assert not new, "divergences from Kafka not in tests/diff/expected.py:\n" + "\n".join(new)
    assert not gone, "listed divergences that no longer occur:\n" + "\n".join(gone)


def test_api_version_ranges_differ_only_where_listed(
    kafka_answers: dict[str, list[Answer]], shoal_agent: AgentProcess
) -> None:
    (case,) = (c for c in CASES if c.name == "api_versions")
    (kafka,) = kafka_answers[case.name]
    (shoal,) = run_case(shoal_agent.bootstrap, case)
    differences = version_differences(version_ranges(kafka.tree), version_ranges(shoal.tree))
    assert differences == {key: (k, s) for key, (k, s, _) in VERSIONS.items()}
