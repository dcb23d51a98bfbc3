"""Crash points: parsing, and that an armed point ends the process at its N-th hit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from shoal.write import crash_points


def test_parse() -> None:
    assert crash_points.parse("after_put") == ("after_put", 1)
    assert crash_points.parse(" after_commit@3 ") == ("after_commit", 3)
    for bad in ("after_lunch", "after_put@0", "after_put@x", ""):
        with pytest.raises(ValueError):
            crash_points.parse(bad)


def test_disarmed_by_default_and_by_empty_value() -> None:
    crash_points.arm("")
    assert crash_points.armed() is None
    crash_points.maybe_crash("after_put")  # returns: nothing armed


def test_exits_137_at_the_nth_hit() -> None:
    code = textwrap.dedent(
        """
        from shoal.write import crash_points
        crash_points.arm("after_commit@3")
        for i in range(5):
            crash_points.maybe_crash("after_put")  # another point: never fires
            crash_points.maybe_crash("after_commit")
            print("survived", i, flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == crash_points.EXIT_CODE
    assert proc.stdout.split("\n")[:2] == ["survived 0", "survived 1"]
    assert "survived 2" not in proc.stdout
    assert "crash point after_commit reached" in proc.stderr
