"""Schema migrations: which `-- migration: N` sections of a schema file a database still needs.

Both backends read their own schema file (`schema.sql`, `schema_pg.sql`; versions are numbered
per dialect) with `load_migrations`, ask `pending` what to run given the version the database is
at, and run each section's statements in their migration transaction.
"""

from __future__ import annotations

import importlib.resources
import re

from shoal.meta.store import MetadataError

Migrations = tuple[tuple[int, tuple[str, ...]], ...]
_MIGRATION_HEADER = re.compile(r"^-- migration: (\d+)\s*$", re.MULTILINE)


def parse_migrations(text: str) -> Migrations:
    """Split a schema file into its `-- migration: N` sections and their statements.

    Statements end with ";" at the end of a line; lines starting with "--" are comments.
    Versions must start at 1 and increase by one, so a missing or reordered section is caught
    on every start rather than half-applied.
    """
    parts = _MIGRATION_HEADER.split(text)
    migrations: list[tuple[int, tuple[str, ...]]] = []
    for version_text, body in zip(parts[1::2], parts[2::2], strict=True):
        code = "\n".join(
            line for line in body.splitlines() if not line.lstrip().startswith("--")
        )
        statements = tuple(
            s.strip() for s in re.split(r";\s*$", code, flags=re.MULTILINE) if s.strip()
        )
        migrations.append((int(version_text), statements))
    versions = [v for v, _ in migrations]
    if not versions or versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"schema migrations must be numbered 1..N, found {versions}")
    return tuple(migrations)


def load_migrations(resource: str) -> Migrations:
    """Parse the schema file `resource` shipped in the `shoal.meta` package."""
    text = importlib.resources.files("shoal.meta").joinpath(resource).read_text(encoding="utf-8")
    return parse_migrations(text)


def pending(migrations: Migrations, current: int) -> Migrations:
    """The sections a database at version `current` still needs, in order. A database newer
    than the code is refused: this code would not know what its tables mean."""
    latest = migrations[-1][0]
    if current > latest:
        raise MetadataError(
            f"database schema version {current} is newer than this shoal ({latest})"
        )
    return tuple((v, s) for v, s in migrations if v > current)
