"""dedup: multi-index hashing finds exactly the pairs a brute-force scan finds."""

from __future__ import annotations

import pytest

from keyclass.components.cleaner import dedup
from tests.fixtures.hashes import random_hashes


def _hashes(n: int, seed: int, near_fraction: float = 0.3) -> list[int]:
    """Random 64-bit hashes, a share of them 0-8 bit flips away from an earlier one."""
    return random_hashes(n, seed, near_fraction, min_flips=0, max_flips=8)


@pytest.mark.parametrize("max_distance", [0, 1, 4, 7, 12, 32])
def test_near_pairs_match_brute_force(max_distance):
    for seed in range(3):
        hashes = _hashes(400, seed)
        assert dedup.near_pairs(hashes, max_distance) == dedup.brute_force_pairs(hashes, max_distance)


@pytest.mark.parametrize(
    "max_distance,chunks", [(0, 3), (1, 3), (4, 3), (4, 4), (4, 5), (7, 3), (7, 4), (7, 8), (12, 5)]
)
def test_every_chunk_plan_matches_brute_force(max_distance, chunks):
    hashes = _hashes(300, seed=chunks, near_fraction=0.5)
    want = dedup.brute_force_pairs(hashes, max_distance)
    assert want, "the fixture should plant near pairs"
    assert dedup.near_pairs(hashes, max_distance, chunks=chunks) == want


def test_plan_widens_chunks_as_n_grows():
    assert dedup.plan(10_000, 4) == (5, 0)
    assert dedup.plan(1_000_000, 4) == (3, 1)


def test_degenerate_buckets_and_edges():
    same = [0] * 50 + [1 << 40] * 3  # e.g. blank images all hash to zero
    assert dedup.near_pairs(same, 2) == dedup.brute_force_pairs(same, 2)
    assert dedup.near_pairs([], 4) == [] and dedup.near_pairs([5], 4) == []
    top = [2**64 - 1, 2**64 - 2, 0]
    assert dedup.near_pairs(top, 1) == [(0, 1)]


def test_popcount64():
    import numpy as np

    values = np.array([0, 1, 2**64 - 1, 0xF0F0], dtype=np.uint64)
    assert dedup.popcount64(values).tolist() == [0, 1, 64, 8]


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
        dedup.near_pairs([1, 2], 64)
