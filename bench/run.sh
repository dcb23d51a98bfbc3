#!/usr/bin/env sh
# Shoal vs Tansu produce/consume benchmark with the repository's venv.
# Extra arguments go to bench/produce_consume.py, e.g.:  bench/run.sh --total-bytes 64MiB --json
set -eu
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
python=${PYTHON:-"$root/.venv/bin/python"}
exec "$python" "$root/bench/produce_consume.py" "$@"
