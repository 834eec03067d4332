"""dedup: multi-index hashing finds exactly the pairs a brute-force scan finds."""

from __future__ import annotations

import random

import pytest

from components.cleaner import dedup


def _hashes(n: int, seed: int, near_fraction: float = 0.3) -> list[int]:
    """Random 64-bit hashes, a share of them a few bit flips away from an earlier one."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if out and rng.random() < near_fraction:
            h = rng.choice(out)
            for _ in range(rng.randint(0, 8)):
                h ^= 1 << rng.randrange(64)
            out.append(h)
        else:
            out.append(rng.getrandbits(64))
    return out


@pytest.mark.parametrize("max_distance", [0, 1, 4, 7, 12, 32])
def test_near_pairs_match_brute_force(max_distance):
    for seed in range(3):
        hashes = _hashes(400, seed)
        assert dedup.near_pairs(hashes, max_distance) == dedup.brute_force_pairs(hashes, max_distance)


def test_index_query_reports_distances():
    index = dedup.HammingIndex(3)
    a = index.add(0)
    b = index.add(0b111)
    c = index.add(0b1111)
    index.add(0b11111)
    assert index.query(0b1) == [(a, 1), (b, 2), (c, 3)]
    assert len(index) == 4


def test_greedy_representatives_do_not_chain():
    # 0 -- 3 bits -- x -- 3 bits -- y: y is 6 bits from 0, so it starts its own group.
    x, y = 0b111, 0b111111
    assert dedup.greedy_representatives([0, x, y], 4) == [0, 0, 2]
    assert dedup.greedy_representatives([0, 1 << 63, 0], 0) == [0, 1, 0]


def test_greedy_joins_the_nearest_representative():
    a, b = 0, 0b11111000  # 5 bits apart: two groups
    assert dedup.greedy_representatives([a, b, 0b11011000], 4) == [0, 1, 1]  # 4 bits from a, 1 from b


def test_bad_distance_is_refused():
    with pytest.raises(ValueError, match="max_distance"):
        dedup.HammingIndex(64)
