"""Near-duplicate search: all pairs within ``d`` bits among n random 64-bit hashes by
multi-index hashing (``dedup.near_pairs``) and the cleaner's greedy grouping
(``dedup.greedy_representatives``), at 10k and 100k hashes. Prints times and the
100k/10k growth (linear = 10x, quadratic = 100x; target: 100k under 30 s, clearly
sub-quadratic), and a brute-force scan on a small n for scale.

    python -m benchmarks.bench_near_duplicates [--distance 4] [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import time

from keyclass.components.cleaner import dedup
from tests.fixtures.hashes import random_hashes


def timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--distance", type=int, default=4)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--brute", type=int, default=3000, help="n for the brute-force reference")
    args = ap.parse_args(argv)
    d = args.distance
    sizes = [int(s) for s in args.sizes.split(",")]

    small = random_hashes(args.brute, seed=1)
    t_brute, brute = timed(dedup.brute_force_pairs, small, d)
    t_mih, mih = timed(dedup.near_pairs, small, d)
    assert brute == mih, "multi-index hashing disagrees with brute force"
    print(
        f"distance <= {d} bits; brute force at n={args.brute}: {t_brute:.2f} s (MIH {t_mih:.3f} s, same {len(mih)} pairs)"
    )

    times = {}
    for n in sizes:
        hashes = random_hashes(n, seed=n)
        t_pairs, pairs = timed(dedup.near_pairs, hashes, d)
        t_greedy, reps = timed(dedup.greedy_representatives, hashes, d)
        groups = len(set(reps))
        times[n] = (t_pairs, t_greedy)
        est_brute = t_brute * (n / args.brute) ** 2
        print(
            f"n={n:>7} (chunks, radius {dedup.plan(n, d)}): near_pairs {t_pairs:6.2f} s ({len(pairs)} pairs), greedy groups {t_greedy:6.2f} s "
            f"({groups} groups); brute force would take ~{est_brute:,.0f} s"
        )
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        for i, name in enumerate(("near_pairs", "greedy")):
            growth = times[b][i] / max(times[a][i], 1e-9)
            print(f"{name}: {b}/{a} growth {growth:.1f}x for {b / a:.0f}x the hashes (quadratic: {(b / a) ** 2:.0f}x)")
        print(f"n={b} under 30 s: {'yes' if max(times[b]) < 30 else 'NO'}")


if __name__ == "__main__":
    main()
