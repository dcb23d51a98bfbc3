"""The layers of pyproject.toml's import-linter contracts hold, and `make lint` (which runs
lint-imports) fails on an import that runs back up them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_of_the_tree(tmp: Path) -> Path:
    shutil.copytree(
        ROOT / "src" / "shoal", tmp / "src" / "shoal", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, so grimp reads it rather than the installed package.
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_tree_keeps_its_layers(tmp_path: Path) -> None:
    result = _lint(_copy_of_the_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_import_up_the_layers_fails(tmp_path: Path) -> None:
    tree = _copy_of_the_tree(tmp_path)
    _append(tree / "src/shoal/meta/store.py", "from shoal.server import kafka_server  # noqa")
    result = _lint(tree)
    assert result.returncode != 0
    assert "shoal.meta is not allowed to import shoal.server" in result.stdout


def test_io_in_the_protocol_package_fails(tmp_path: Path) -> None:
    tree = _copy_of_the_tree(tmp_path)
    _append(tree / "src/shoal/protocol/batch.py", "import socket  # noqa")
    result = _lint(tree)
    assert result.returncode != 0
    assert "shoal.protocol.batch -> socket" in result.stdout


def _layered_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    return {name.strip() for layer in layers for name in layer.split("|")}


@pytest.mark.parametrize(
    "module",
    sorted(
        f"shoal.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "src" / "shoal").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    ),
)
def test_every_module_has_a_layer(module: str) -> None:
    # import-linter ignores a module no layer names: a new package would escape the contract.
    assert module in _layered_modules()


def test_make_lint_runs_the_contracts() -> None:
    assert re.search(
        r"^lint:.*\n(\t.*\n)*\t\$\(BIN\)/lint-imports", (ROOT / "Makefile").read_text(), re.M
    )
