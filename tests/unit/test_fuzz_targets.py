"""Every fuzz target runs for a bounded time over its seed corpus without a crash (so a
regression that the corpus or a short run reaches fails `make test`). `make fuzz` runs them
longer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ["frames", "requests", "batches", "segments", "peer_wire"]
SECONDS = 12  # plus ~18 s of start-up and corpus loading each: ~2.5 min in all


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_runs_clean(target: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "run.py"), "--seconds", str(SECONDS), target],
        capture_output=True,
        text=True,
        timeout=SECONDS + 180,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
