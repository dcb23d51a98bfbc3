"""Run the fuzz targets for a bounded time each, over a copy of their seed corpus.

    python fuzz/run.py [--seconds N] [target ...]     # default: every target, FUZZ_SECONDS or 60

Each target (fuzz/fuzz_<name>.py) runs in its own process with libFuzzer's limits: a total
time, 10 s per input (a hang is a crash), 2 GiB of RSS. New inputs go to a temporary copy of
fuzz/corpus/<name>/, never into the committed corpus; a crashing input is kept under
.cache/fuzz/ and named in the output. Prints the executions of each target and exits non-zero
if any target crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
TARGETS = ("frames", "requests", "batches", "segments", "peer_wire")
ARTIFACTS = ROOT / ".cache" / "fuzz"
_DONE = re.compile(r"#(\d+)\s+DONE .*?exec/s: (\d+)")


@dataclass(frozen=True)
class Result:
    target: str
    returncode: int
    runs: int
    exec_per_s: int
    output: str


def run_target(target: str, seconds: int) -> Result:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as tmp:
        corpus = Path(tmp) / "corpus"
        shutil.copytree(FUZZ / "corpus" / target, corpus)
        done = subprocess.run(
            [
                sys.executable,
                str(FUZZ / f"fuzz_{target}.py"),
                f"-max_total_time={seconds}",
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
                f"-artifact_prefix={ARTIFACTS}/{target}-",
                str(corpus),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=seconds + 120,
        )
    output = done.stdout + done.stderr
    found = _DONE.findall(output)
    runs, rate = (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)
    return Result(target, done.returncode, runs, rate, output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", 60)))
    parser.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    failed = False
    for target in args.targets or TARGETS:
        r = run_target(target, args.seconds)
        status = "ok" if r.returncode == 0 else f"CRASH (exit {r.returncode})"
        print(f"{target:10} {r.runs:>10} executions {r.exec_per_s:>7} exec/s  {status}", flush=True)
        if r.returncode != 0:
            failed = True
            print("\n".join(r.output.splitlines()[-40:]), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
