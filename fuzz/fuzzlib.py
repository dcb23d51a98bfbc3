"""What every fuzz target shares: atheris's entry point, kept apart from Shoal's imports.

A target imports the Shoal modules it fuzzes inside `atheris.instrument_imports()`, so they
are instrumented for coverage; this module imports nothing of Shoal, so that nothing is
imported (and left uninstrumented) before that block runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import atheris  # type: ignore[import-untyped]


def main(test_one_input: Callable[[bytes], None]) -> None:
    """Run libFuzzer over `test_one_input` with the command line's libFuzzer flags."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
