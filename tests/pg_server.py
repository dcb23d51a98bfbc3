"""The throwaway PostgreSQL server of the tests and benchmarks: `shoal.verify.pg_server`
(shared with `shoal verify --playground --metadata postgres`), re-exported here.

    python -m tests.pg_server        # start one, print its URL, stop it on Ctrl-C / SIGTERM
"""

from __future__ import annotations

from shoal.verify.pg_server import PgServer, PgUnavailable, find_bin_dir, main

__all__ = ["PgServer", "PgUnavailable", "find_bin_dir", "main"]

if __name__ == "__main__":
    main()
