"""Every Prometheus metric of the pollers, defined once.

Labels are the provider, the source's config name, the stream and an outcome
or status: never a secret, never an e-mail address, never a URL.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "REQUESTS",
    "RETRIES",
    "RECORDS_READ",
    "EVENTS_PUBLISHED",
    "RECORDS_PUBLISHED",
    "DLQ_RECORDS",
    "AUTH_FAILURES",
    "SOURCE_UP",
    "STREAM_UP",
    "LAST_SUCCESS",
    "CURSOR_LAG",
    "POLL_DURATION",
    "TRANSACTIONS",
    "DUPLICATES_SKIPPED",
]

_S = ("provider", "source", "stream")

REQUESTS = Counter(
    "mailpulse_connector_requests",
    "HTTP requests to providers, by HTTP status (or 'error' for no response)",
    (*_S, "status"),
)
RETRIES = Counter(
    "mailpulse_connector_retries",
    "Requests retried, by reason (status code, timeout, connect, malformed)",
    (*_S, "reason"),
)
RECORDS_READ = Counter("mailpulse_connector_records_read", "Raw provider records read", _S)
EVENTS_PUBLISHED = Counter(
    "mailpulse_connector_events_published",
    "Email events committed to the events topic, by event type (the EventType values: a bounded set)",
    (*_S, "type"),
)
RECORDS_PUBLISHED = Counter(
    "mailpulse_connector_records_published",
    "Metadata records committed (campaigns, contacts, usage, calendar)",
    (*_S, "topic"),
)
DUPLICATES_SKIPPED = Counter(
    "mailpulse_connector_duplicates_skipped", "Facts or unchanged records not republished (already on the topic)", _S
)
DLQ_RECORDS = Counter("mailpulse_connector_dlq_records", "Records sent to the dead-letter topic", _S)
AUTH_FAILURES = Counter(
    "mailpulse_connector_auth_failures", "401/403 answers that stopped a source", ("provider", "source")
)
SOURCE_UP = Gauge(
    "mailpulse_connector_source_up",
    "1 while the source's pollers run, 0 once stopped by an error",
    ("provider", "source"),
)
STREAM_UP = Gauge(
    "mailpulse_connector_stream_up",
    "1 while the stream polls, 0 once stopped (auth error, unpageable tie run, fenced)",
    _S,
)
LAST_SUCCESS = Gauge(
    "mailpulse_connector_last_success_timestamp_seconds", "Unix time of the last completed poll pass", _S
)
CURSOR_LAG = Gauge(
    "mailpulse_connector_cursor_lag_seconds", "Provider clock minus the committed cursor, after a pass", _S
)
POLL_DURATION = Histogram(
    "mailpulse_connector_poll_duration_seconds",
    "Duration of one poll pass (kind: poll, reconcile, backfill)",
    (*_S, "kind"),
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
TRANSACTIONS = Counter(
    "mailpulse_connector_transactions", "Kafka transactions, by outcome (committed, aborted)", (*_S, "outcome")
)
