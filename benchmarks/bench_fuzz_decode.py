"""Fuzzing the decoder: at least 100k atheris-mutated inputs through the cleaner's
per-file step and ``keyclass predict``'s loader (``tests/cleaner/fuzz_decode.py``),
seeded from every format the test fixtures make. Target: 0 crashes.

Prints the number of inputs, crashes, time and rate, and, as the baseline measured in
the same run, the rate of the same two paths on the unmutated seeds without coverage
instrumentation (what fuzzing costs per input). Crashing inputs, if any, are kept in
``--crashes`` for ``tests/cleaner/fuzz_corpus/``.

    python -m benchmarks.bench_fuzz_decode [--runs 100000] [--crashes DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from tests.cleaner import fuzz_decode


def seed_rate(seconds: float = 5.0) -> tuple[int, float]:
    """Inputs per second of the harness' target on the plain seeds (no instrumentation)."""
    seeds = list(fuzz_decode.seeds().values())
    with tempfile.TemporaryDirectory() as work:
        target = fuzz_decode.Target(work)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for data in seeds:
                target(data)
            n += len(seeds)
        return n, n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--crashes", default="", help="keep crashing inputs here (default: a temp dir)")
    ap.add_argument("--max-len", type=int, default=20_000, help="libFuzzer's -max_len (bytes)")
    ap.add_argument("--seed", type=int, default=1, help="libFuzzer's -seed")
    args = ap.parse_args(argv)
    crashes = args.crashes or tempfile.mkdtemp(prefix="keyclass-fuzz-crashes-")
    os.makedirs(crashes, exist_ok=True)

    n_seed, base_rate = seed_rate()
    cmd = [
        sys.executable,
        "-m",
        "tests.cleaner.fuzz_decode",
        f"-atheris_runs={args.runs}",
        f"-max_len={args.max_len}",
        f"-seed={args.seed}",
        "-timeout=10",
        "--collect",
        crashes,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    wall = time.perf_counter() - t0
    m = re.search(r"FUZZ inputs=(\d+) crashes=(\d+) seconds=([\d.]+) rate=(\d+)/s", proc.stderr)
    if not m:
        print(proc.stderr[-3000:], file=sys.stderr)
        print(f"fuzz run failed (exit {proc.returncode}): no summary line", file=sys.stderr)
        return 1
    inputs, n_crash, seconds, rate = int(m[1]), int(m[2]), float(m[3]), int(m[4])
    files = sorted(os.listdir(crashes))
    print(f"fuzz: {inputs} inputs in {seconds:.1f} s ({rate}/s; {wall:.0f} s with start-up), crashes: {n_crash}")
    print(f"baseline, the unmutated seeds without instrumentation: {base_rate:.0f}/s ({n_seed} inputs)")
    print(f"fuzzing rate / baseline rate: {rate / base_rate:.2f}x")
    if proc.returncode != 0:
        # libFuzzer stopped the run itself (a slow input past -timeout, memory past -rss_limit_mb...):
        # say so with its own words, since the crash count alone would not show it.
        print(f"the fuzz run exited with status {proc.returncode}; the end of its log:\n{proc.stderr[-2000:]}")
    met = inputs >= 100_000 and n_crash == 0 and proc.returncode == 0
    print(f"target >= 100000 inputs, 0 crashes, a clean exit: {'met' if met else 'NOT met'}")
    if files:
        print(f"crashing inputs in {crashes}: {', '.join(files[:10])}{' ...' if len(files) > 10 else ''}")
    return 0 if n_crash == 0 and proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
