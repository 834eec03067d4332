"""Near-duplicate search over 64-bit perceptual hashes by multi-index hashing.

Two hashes within Hamming distance ``d`` agree exactly on at least one of ``d + 1``
disjoint bit chunks (pigeonhole). :class:`HammingIndex` keeps one hash table per chunk;
a query looks up its own chunk values and verifies the few candidates with a popcount.
For random 64-bit hashes and ``d = 4`` (chunks of 12-13 bits) a query touches about
``5 · n / 2^13`` candidates instead of ``n``: all pairs over 100k hashes take seconds,
not the hours a quadratic scan would. Large ``d`` means short chunks and more
candidates; results stay exact at every ``d``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

HASH_BITS = 64


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _chunks(max_distance: int, bits: int = HASH_BITS) -> list[tuple[int, int]]:
    """``max_distance + 1`` (shift, mask) pairs splitting ``bits`` as evenly as possible."""
    n = min(max_distance + 1, bits)
    base, extra = divmod(bits, n)
    out, shift = [], 0
    for i in range(n):
        width = base + (1 if i < extra else 0)
        out.append((shift, (1 << width) - 1))
        shift += width
    return out


class HammingIndex:
    """Exact radius search on 64-bit hashes: ``add`` keys, ``query`` a hash."""

    def __init__(self, max_distance: int):
        if not 0 <= max_distance < HASH_BITS:
            raise ValueError(f"max_distance must be in [0, {HASH_BITS}), got {max_distance}")
        self.max_distance = max_distance
        self._chunks = _chunks(max_distance)
        self._tables: list[dict[int, list[int]]] = [defaultdict(list) for _ in self._chunks]
        self._hashes: list[int] = []

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, value: int) -> int:
        """Insert a hash; returns its id (insertion order, from 0)."""
        i = len(self._hashes)
        self._hashes.append(value)
        for table, (shift, mask) in zip(self._tables, self._chunks, strict=True):
            table[(value >> shift) & mask].append(i)
        return i

    def query(self, value: int) -> list[tuple[int, int]]:
        """``(id, distance)`` of every stored hash within ``max_distance``, by id."""
        seen: set[int] = set()
        out = []
        for table, (shift, mask) in zip(self._tables, self._chunks, strict=True):
            for i in table.get((value >> shift) & mask, ()):
                if i in seen:
                    continue
                seen.add(i)
                dist = (self._hashes[i] ^ value).bit_count()
                if dist <= self.max_distance:
                    out.append((i, dist))
        out.sort()
        return out


def near_pairs(hashes: Sequence[int], max_distance: int) -> list[tuple[int, int]]:
    """Every index pair ``(i, j)``, ``i < j``, with ``hamming(hashes[i], hashes[j]) <= max_distance``."""
    index = HammingIndex(max_distance)
    pairs = []
    for j, h in enumerate(hashes):
        pairs.extend((i, j) for i, _ in index.query(h))
        index.add(h)
    return sorted(pairs)


def brute_force_pairs(hashes: Sequence[int], max_distance: int) -> list[tuple[int, int]]:
    """The quadratic reference for :func:`near_pairs` (tests and benchmarks only)."""
    n = len(hashes)
    return [(i, j) for i in range(n) for j in range(i + 1, n) if hamming(hashes[i], hashes[j]) <= max_distance]


def greedy_representatives(hashes: Iterable[int], max_distance: int) -> list[int]:
    """Walk ``hashes`` in the given order (largest image first); each either starts a new
    group or joins the nearest earlier representative within ``max_distance``.

    Returns, per position, the position of its representative (itself for representatives).
    Representatives are pairwise farther apart than ``max_distance``, so there is no
    chaining: an image never joins a group through a chain of small steps.
    """
    index = HammingIndex(max_distance)
    rep_positions: list[int] = []  # index id -> position
    out = []
    for pos, h in enumerate(hashes):
        hits = index.query(h)
        if hits:
            best_id = min(hits, key=lambda t: (t[1], t[0]))[0]
            out.append(rep_positions[best_id])
        else:
            index.add(h)
            rep_positions.append(pos)
            out.append(pos)
    return out
