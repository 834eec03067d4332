"""Near-duplicate search over 64-bit perceptual hashes by multi-index hashing.

Split the 64 bits into ``m`` disjoint chunks. Two hashes within Hamming distance ``d``
differ in at most ``r = d // m`` bits on at least one chunk (pigeonhole). So for each
chunk, sort the hashes by chunk value and look up, for every hash, its chunk value with
each pattern of at most ``r`` flipped bits in a direct-address bucket table; only the
hashes found that way are compared in full. With ``m`` chosen for ``n`` (wider chunks as ``n`` grows,
as in Norouzi et al.'s multi-index hashing) the candidates stay few per hash, so the
work grows about like ``n log n`` times a slowly growing probe count, never like ``n²``.
Everything is vectorised with numpy; results are exact at every ``d``.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

HASH_BITS = 64
MIN_CHUNKS = 3  # chunks of at most 22 bits: direct-address tables of 2^22 entries
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits per element of a uint64 array."""
    return _POPCOUNT8[np.ascontiguousarray(x, dtype=np.uint64).view(np.uint8).reshape(-1, 8)].sum(axis=1)


def _chunks(m: int, bits: int = HASH_BITS) -> list[tuple[int, int, int]]:
    """``m`` (shift, width, mask) triples splitting ``bits`` as evenly as possible."""
    base, extra = divmod(bits, m)
    out, shift = [], 0
    for i in range(m):
        width = base + (1 if i < extra else 0)
        out.append((shift, width, (1 << width) - 1))
        shift += width
    return out


def _patterns(width: int, radius: int) -> list[int]:
    """Every ``width``-bit mask with at most ``radius`` bits set."""
    return [sum(1 << b for b in bits) for k in range(radius + 1) for bits in itertools.combinations(range(width), k)]


def plan(n: int, max_distance: int) -> tuple[int, int]:
    """(chunks m, per-chunk radius r) with the least estimated work for ``n`` random hashes:
    ``m · probes · n`` table lookups plus ``m · probes · n² / 2^width`` candidate checks.
    At least 3 chunks, so a chunk's direct-address table has at most 2^22 entries."""
    best = None
    for m in range(MIN_CHUNKS, max(MIN_CHUNKS, max_distance + 1) + 1):
        radius = max_distance // m
        width = HASH_BITS // m
        probes = sum(math.comb(width + 1, k) for k in range(radius + 1))
        cost = m * probes * n * (1 + n / 2.0**width)
        if best is None or cost < best[0]:
            best = (cost, m, radius)
    assert best is not None
    return best[1], best[2]


def near_pairs(hashes: Sequence[int], max_distance: int, chunks: int | None = None) -> list[tuple[int, int]]:
    """Every index pair ``(i, j)``, ``i < j``, with ``hamming(hashes[i], hashes[j]) <= max_distance``,
    sorted. ``chunks`` (at least 3) overrides :func:`plan`'s choice; the result is the same."""
    if not 0 <= max_distance < HASH_BITS:
        raise ValueError(f"max_distance must be in [0, {HASH_BITS}), got {max_distance}")
    values = np.array(hashes, dtype=np.uint64)
    n = len(values)
    if n < 2:
        return []
    if chunks is None:
        m, radius = plan(n, max_distance)
    elif chunks < MIN_CHUNKS:
        raise ValueError(f"chunks must be at least {MIN_CHUNKS}, got {chunks}")
    else:
        m, radius = chunks, max_distance // chunks
    found = []
    for shift, width, mask in _chunks(m):
        keys = ((values >> np.uint64(shift)) & np.uint64(mask)).astype(np.int64)
        # Direct-address buckets: hashes with chunk value k are order[starts[k]:starts[k + 1]].
        order = np.argsort(keys, kind="stable")
        starts = np.zeros(mask + 2, dtype=np.int64)
        np.cumsum(np.bincount(keys, minlength=mask + 1), out=starts[1:])
        for pattern in _patterns(width, radius):
            probe = keys ^ pattern
            lo = starts[probe]
            count = starts[probe + 1] - lo
            hit = np.flatnonzero(count)
            if not hit.size:
                continue
            reps = count[hit]
            i = np.repeat(hit, reps)
            within = np.arange(len(i)) - np.repeat(np.cumsum(reps) - reps, reps)
            j = order[np.repeat(lo[hit], reps) + within]
            keep = i < j  # each unordered pair once per pattern; self-matches dropped
            i, j = i[keep], j[keep]
            close = popcount64(values[i] ^ values[j]) <= max_distance
            if close.any():
                found.append(np.stack([i[close], j[close]], axis=1))
    if not found:
        return []
    pairs = np.unique(np.concatenate(found), axis=0)
    return [(int(i), int(j)) for i, j in pairs]


def brute_force_pairs(hashes: Sequence[int], max_distance: int) -> list[tuple[int, int]]:
    """The quadratic reference for :func:`near_pairs` (tests and benchmarks only)."""
    n = len(hashes)
    return [(i, j) for i in range(n) for j in range(i + 1, n) if hamming(hashes[i], hashes[j]) <= max_distance]


def assign_groups(n: int, links: Mapping[tuple[int, int], float]) -> list[int]:
    """Walk positions ``0..n-1`` in order (largest image first); each either starts a new
    group or joins the closest earlier representative it is linked to (``links[(i, j)]``,
    ``i < j``, a distance: smaller is closer; ties: the earliest).

    Returns, per position, the position of its representative (itself for representatives).
    A position joins only a representative it is linked to directly, so there is no
    chaining: an image never joins a group through a chain of small steps.
    """
    earlier: dict[int, list[int]] = defaultdict(list)
    for i, j in links:
        if not 0 <= i < j < n:
            raise ValueError(f"link {(i, j)} is not an ordered pair of positions below {n}")
        earlier[j].append(i)
    out: list[int] = []
    for pos in range(n):
        reps = [i for i in earlier.get(pos, ()) if out[i] == i]
        out.append(min(reps, key=lambda i: (links[(i, pos)], i)) if reps else pos)
    return out


def greedy_representatives(hashes: Sequence[int], max_distance: int) -> list[int]:
    """:func:`assign_groups` over every pair of ``hashes`` within ``max_distance`` bits,
    closeness by Hamming distance: the pHash-only rule. Representatives are pairwise
    farther apart than ``max_distance``."""
    hashes = list(hashes)
    links = {(i, j): float(hamming(hashes[i], hashes[j])) for i, j in near_pairs(hashes, max_distance)}
    return assign_groups(len(hashes), links)
