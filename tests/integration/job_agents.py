"""What the tests of the background jobs share: an agent on the test's backend with fast job
intervals, and a wait for what the jobs do."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess
from tests.backends import Backend


def job_agent_process(
    tmp_path: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> AgentProcess:
    """An agent (not started) on `backend` with `args`; the backend's environment is set in the
    test's too, since `list_keys` reads the bucket's credentials from there."""
    for key, value in backend.env.items():
        monkeypatch.setenv(key, value)
    return AgentProcess(tmp_path / "agent", [*backend.args, *args], env=backend.env)


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.25)
