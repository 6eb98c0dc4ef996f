"""The engagement and deliverability figures of the worker's state, as Prometheus metrics.

Every figure here is read from state at scrape time (``StateCollector``), never
counted as events pass, so a replay, a duplicate or a rebalance cannot inflate
it. Each worker exports its share: the sources and mailbox providers of the
stage-2 partitions it owns (``mailpulse.streams.rollups``), and the campaigns
it owns; a partition belongs to one worker at a time, so ``sum by (...)`` over
workers in PromQL counts every message once. A worker that is not ready (a
rebalance under way) exports none of them: for a moment a share is missing,
never doubled.

Bounds (the label sets): sources x 13 flags x 4 (all-time and three windows)
for the source figures; ``worker.metrics_campaigns`` campaigns per worker x 13
x 3 for the campaign figures; sources x mailbox groups (5 built-in, ``unknown``
and the config's) x 9 flags x 4 for the mailbox figures; 4 providers x 2
references x 16 buckets for freshness. With the defaults (200 campaigns, no
extra groups), one worker and S sources: 52 S + 7,800 + 252 S + 128 series.
"""

from __future__ import annotations

import bisect
import heapq
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from mailpulse.streams.aggregates import combine, decode_value
from mailpulse.streams.query import MAILBOX_FLAGS
from mailpulse.streams.reducers import COUNT_FIELDS, FLAG_FIELDS
from mailpulse.streams.rollups import GroupTotals, windows_of

if TYPE_CHECKING:
    from mailpulse.streams.app import Streams

__all__ = ["FRESHNESS_BUCKETS", "MAILBOX_FLAGS", "Freshness", "StateCollector", "mailbox_totals", "source_totals"]

_MAILBOX_IDX = tuple(FLAG_FIELDS.index(f) for f in MAILBOX_FLAGS)
_NF = len(FLAG_FIELDS)
_OPENS, _CLICKS = COUNT_FIELDS.index("opens_total"), COUNT_FIELDS.index("clicks_total")
_CAMPAIGN_WINDOWS = ("current_hour", "previous_hour")
#: Seconds from an event's time (occurred_at, observed_at) to the worker applying it. Polls run every
#: minute or so, and reconcile passes and backfills bring facts hours or days old.
FRESHNESS_BUCKETS = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    10800.0,
    21600.0,
    86400.0,
    604800.0,
    2592000.0,
)

#: The bounds in whole milliseconds (an event's age is compared in ms: exact, no float per event).
_BUCKET_MS = tuple(int(b * 1000) for b in FRESHNESS_BUCKETS)
assert all(ms == b * 1000 for ms, b in zip(_BUCKET_MS, FRESHNESS_BUCKETS, strict=True))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _sum_groups(rollups: Any) -> dict[tuple[str, ...], GroupTotals]:
    """The worker's share: its partitions' rollups added up, by group."""
    out: dict[tuple[str, ...], GroupTotals] = {}
    for rollup in rollups.values():
        for group, totals in rollup.groups.items():
            acc = out.get(group)
            if acc is None:
                acc = out[group] = GroupTotals()
            for i, v in enumerate(totals.counts):
                acc.counts[i] += v
            for hour, row in totals.hourly.items():
                dst = acc.hourly.get(hour)
                if dst is None:
                    acc.hourly[hour] = list(row)
                else:
                    for i, v in enumerate(row):
                        dst[i] += v
    return out


def source_totals(s: Streams) -> dict[tuple[str, ...], GroupTotals]:
    """(provider, source) -> this worker's share of the source's campaign figures."""
    return _sum_groups(s.campaign_rollups)


def mailbox_totals(s: Streams) -> dict[tuple[str, ...], GroupTotals]:
    """(provider, source, mailbox provider) -> this worker's share of the figures of those contacts."""
    return _sum_groups(s.contact_rollups)


class Freshness:
    """Histograms of (time applied - occurred_at) and (time applied - observed_at), per provider.

    Filled a batch at a time by stage 1 (``observe``: two bisects per event, no lock), exported by
    the collector as ``mailpulse_stream_event_delay_seconds``.
    """

    def __init__(self) -> None:
        # (provider, since) -> [bucket counts..., +Inf count], sum of seconds
        self.counts: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = {}

    def observe(self, provider: str, now_ms: int, occurred_ms: list[int], observed_ms: list[int]) -> None:
        for since, times in (("occurred_at", occurred_ms), ("observed_at", observed_ms)):
            key = (provider, since)
            counts = self.counts.get(key)
            if counts is None:
                counts = self.counts[key] = [0] * (len(FRESHNESS_BUCKETS) + 1)
                self.sums[key] = 0.0
            # An event of age a (seconds) falls in the first bucket whose bound is >= a, i.e. bucket i
            # counts the times t with now - bound[i] <= t < now - bound[i-1]. On the times sorted (C
            # speed), each bucket is two bisects: no Python work per event. A time ahead of our clock
            # (a provider clock ahead of ours) is age 0.
            ordered = sorted(times)
            n = len(ordered)
            above = n  # times not yet given to a bucket: the oldest ones, ordered[:above]
            for i, threshold in enumerate(_BUCKET_MS):
                start = bisect.bisect_left(ordered, now_ms - threshold)
                counts[i] += above - start if start < above else 0
                above = min(above, start)
            counts[-1] += above
            ahead = n - bisect.bisect_right(ordered, now_ms)
            self.sums[key] += (now_ms * (n - ahead) - sum(ordered[: n - ahead])) / 1000.0

    def family(self) -> Metric:
        family = HistogramMetricFamily(
            "mailpulse_stream_event_delay_seconds",
            "Seconds from an event's time to this worker applying it to state, by provider; since=occurred_at "
            "(when it happened at the provider) or observed_at (when a poller read it). Events that added nothing "
            "(duplicates) are not counted.",
            labels=["provider", "since"],
        )
        for (provider, since), counts in sorted(self.counts.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*FRESHNESS_BUCKETS, float("inf")), counts, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric([provider, since], buckets, self.sums[(provider, since)])
        return family


def _flag_family(name: str, help_text: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, labels=labels)


class StateCollector:
    """A prometheus_client collector reading the worker's state at scrape time."""

    #: Scrapes within this many seconds of the last one get its figures again (a dashboard refresh
    #: or several Prometheis must not make the worker recompute them each time).
    CACHE_S = 1.0

    def __init__(self, s: Streams) -> None:
        self.s = s
        self._cached: tuple[float, list[Metric]] | None = None

    def describe(self) -> list[Metric]:
        """The families this collector exports (names, types and help), without samples."""
        return list(self.families())

    @staticmethod
    def families() -> Iterator[Metric]:
        yield Freshness().family()
        for name, labels in (
            ("mailpulse_source_messages", ["provider", "source", "flag"]),
            ("mailpulse_source_engagements", ["provider", "source", "kind"]),
            ("mailpulse_source_window_messages", ["provider", "source", "flag", "window"]),
            ("mailpulse_campaign_messages", ["provider", "source", "campaign", "flag"]),
            ("mailpulse_campaign_window_messages", ["provider", "source", "campaign", "flag", "window"]),
            ("mailpulse_mailbox_messages", ["provider", "source", "mailbox_provider", "flag"]),
            ("mailpulse_mailbox_window_messages", ["provider", "source", "mailbox_provider", "flag", "window"]),
        ):
            yield GaugeMetricFamily(name, "", labels=labels)

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self.CACHE_S:
            self._cached = (now, list(self._collect()))
        return iter(self._cached[1])

    def _collect(self) -> Iterator[Metric]:
        s = self.s
        yield s.freshness.family()
        if not s.views_ready:
            return  # a rebalance is moving partitions: export no share rather than a stale or partial one
        now = _now_ms()
        yield from self._sources(now)
        yield from self._campaigns(now)
        yield from self._mailboxes(now)

    def _sources(self, now: int) -> Iterator[Metric]:
        labels = ["provider", "source"]
        total = _flag_family(
            "mailpulse_source_messages",
            "Messages of the source's campaigns with each flag (sent, delivered, bounced, ...), all-time, from state. "
            "Each worker exports its share: sum by (provider, source, flag).",
            [*labels, "flag"],
        )
        engaged = _flag_family(
            "mailpulse_source_engagements",
            "Opens and clicks of the source's campaigns (kind=opens|clicks; provider counters where reported), "
            "all-time, from state; each worker's share.",
            [*labels, "kind"],
        )
        window = _flag_family(
            "mailpulse_source_window_messages",
            "Messages of the source's campaigns whose flag became true in the window (window=current_hour, "
            "previous_hour: UTC hours of event time; last_24h: the current hour and the 23 before it); each worker's share.",
            [*labels, "flag", "window"],
        )
        for (provider, source), totals in sorted(source_totals(self.s).items()):
            for i, flag in enumerate(FLAG_FIELDS):
                total.add_metric([provider, source, flag], totals.counts[i])
            engaged.add_metric([provider, source, "opens"], totals.counts[_OPENS])
            engaged.add_metric([provider, source, "clicks"], totals.counts[_CLICKS])
            for name, row in windows_of(totals.hourly, now).items():
                for i, flag in enumerate(FLAG_FIELDS):
                    window.add_metric([provider, source, flag, name], row[i])
        yield from (total, engaged, window)

    def _campaigns(self, now: int) -> Iterator[Metric]:
        s = self.s
        labels = ["provider", "source", "campaign"]
        total = _flag_family(
            "mailpulse_campaign_messages",
            "Messages of the campaign with each flag, all-time, for the worker.metrics_campaigns most recently "
            "active campaigns each worker owns (a campaign that drops out of them loses its series).",
            [*labels, "flag"],
        )
        window = _flag_family(
            "mailpulse_campaign_window_messages",
            "Messages of the campaign whose flag became true in the window (current_hour, previous_hour: UTC hours "
            "of event time), for the exported campaigns.",
            [*labels, "flag", "window"],
        )
        limit = s.config.worker.metrics_campaigns
        candidates = (
            (at, partition, key) for partition, index in s.campaign_last_at.items() for key, at in index.items()
        )
        for _, partition, key in heapq.nlargest(limit, candidates) if limit else ():
            combined = combine(decode_value(s.campaign_table.get(partition, key)), now)
            if combined is None or combined.provider is None:
                continue
            source, _, campaign = key.decode().partition(":")
            base = [combined.provider, source, campaign]
            for i, flag in enumerate(FLAG_FIELDS):
                total.add_metric([*base, flag], combined.counts[i])
            for name, row in windows_of(combined.hourly, now, _CAMPAIGN_WINDOWS).items():
                for i, flag in enumerate(FLAG_FIELDS):
                    window.add_metric([*base, flag, name], row[i])
        yield from (total, window)

    def _mailboxes(self, now: int) -> Iterator[Metric]:
        labels = ["provider", "source", "mailbox_provider"]
        total = _flag_family(
            "mailpulse_mailbox_messages",
            "Messages with each flag by the recipient's mailbox provider (gmail, microsoft, yahoo, apple, other, "
            "the config's groups; unknown until the contact's address is known), all-time, from the contacts' "
            "state; each worker's share.",
            [*labels, "flag"],
        )
        window = _flag_family(
            "mailpulse_mailbox_window_messages",
            "The same by window (current_hour, previous_hour, last_24h: hours of event time, UTC); each worker's share.",
            [*labels, "flag", "window"],
        )
        for (provider, source, mailbox), totals in sorted(mailbox_totals(self.s).items()):
            for i in _MAILBOX_IDX:
                total.add_metric([provider, source, mailbox, FLAG_FIELDS[i]], totals.counts[i])
            for name, row in windows_of(totals.hourly, now).items():
                for i in _MAILBOX_IDX:
                    window.add_metric([provider, source, mailbox, FLAG_FIELDS[i], name], row[i])
        yield from (total, window)
