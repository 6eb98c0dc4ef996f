"""The freshness histogram counts each event in the bucket its age says, computed a batch at a time."""

from __future__ import annotations

import bisect

from hypothesis import given
from hypothesis import strategies as st

from mailpulse.streams.statemetrics import FRESHNESS_BUCKETS, Freshness

NOW = 1_790_000_000_000


def one_by_one(now_ms: int, times: list[int]) -> tuple[list[int], float]:
    """The definition, event by event: age in seconds (0 when ahead of our clock), first bound >= age."""
    counts = [0] * (len(FRESHNESS_BUCKETS) + 1)
    total = 0.0
    for t in times:
        age = max(0.0, (now_ms - t) / 1000.0)
        total += age
        counts[bisect.bisect_left(FRESHNESS_BUCKETS, age)] += 1
    return counts, total


ages_ms = st.one_of(
    st.integers(-5_000, 3_000_000_000),  # from a little ahead of our clock to beyond the last bound
    st.sampled_from([int(b * 1000) + d for b in FRESHNESS_BUCKETS for d in (-1, 0, 1)]),  # the bounds themselves
)


@given(st.lists(st.lists(ages_ms, max_size=60), max_size=4))
def test_batched_histogram_equals_the_event_by_event_definition(batches: list[list[int]]) -> None:
    freshness = Freshness()
    expected_counts = [0] * (len(FRESHNESS_BUCKETS) + 1)
    expected_sum = 0.0
    for ages in batches:
        times = [NOW - a for a in ages]
        freshness.observe("smtpeter", NOW, times, times)
        counts, total = one_by_one(NOW, times)
        expected_counts = [a + b for a, b in zip(expected_counts, counts, strict=True)]
        expected_sum += total
    for since in ("occurred_at", "observed_at"):
        if any(batches):
            assert freshness.counts["smtpeter", since] == expected_counts
            assert abs(freshness.sums["smtpeter", since] - expected_sum) <= 1e-6 * max(1.0, expected_sum)
        else:
            assert sum(freshness.counts.get(("smtpeter", since), [0])) == 0


def test_an_event_exactly_at_a_bound_is_in_that_bound_bucket() -> None:
    freshness = Freshness()
    freshness.observe("supersend", NOW, [NOW - 5_000, NOW - 5_001, NOW + 10], [NOW])
    counts = freshness.counts["supersend", "occurred_at"]
    assert counts[FRESHNESS_BUCKETS.index(5.0)] == 1  # 5 s: le="5"
    assert counts[FRESHNESS_BUCKETS.index(15.0)] == 1  # 5.001 s: le="15"
    assert counts[0] == 1  # ahead of our clock: age 0
    assert freshness.sums["supersend", "occurred_at"] == 10.001
