"""Benchmark of issue #7: `mimamori demo --no-serve` completes within 60 s.

Run by hand, never by pytest (``norecursedirs`` keeps ``tests/bench`` out of the suite):

    python -m tests.bench.bench_demo             # three runs
    python -m tests.bench.bench_demo --runs 1

Each run is a fresh process with no ``MIMAMORI_*`` variable, exactly as a newcomer types it
after ``pip install .``: a temporary SQLite file, migrations, 200 residents, the whole
simulated morning, the summary. It prints the wall time of each run and the time the demo
reports for itself, and exits with status 1 when any run misses the target or fails.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 60.0
MIMAMORI = str(Path(sys.executable).parent / "mimamori")


def one_run() -> tuple[float, float | None, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")}
    with tempfile.TemporaryDirectory() as cwd:
        started = time.monotonic()
        result = subprocess.run(
            [MIMAMORI, "demo", "--no-serve"],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=600,
        )
        wall = time.monotonic() - started
    reported = re.search(r"completed in (\d+\.\d) s", result.stdout)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
    return wall, float(reported.group(1)) if reported else None, result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    walls = []
    ok = True
    for n in range(1, args.runs + 1):
        wall, reported, code = one_run()
        walls.append(wall)
        met = code == 0 and wall <= TARGET_SECONDS
        ok = ok and met
        print(
            f"run {n}: {wall:.1f} s wall (demo reports {reported} s), exit {code}: "
            f"{'OK' if met else 'MISSED'} (target {TARGET_SECONDS:.0f} s)"
        )
    print(f"median {statistics.median(walls):.1f} s, worst {max(walls):.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
