"""Every topic mailpulse reads or writes: the single source of truth.

A ``TopicSpec`` names the topic and fixes its partitions, cleanup policy,
retention, key format and value schema. ``mailpulse topics create`` creates
what is missing from these specs and reports drift; the README's topic table
is written from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import orjson

__all__ = [
    "TopicSpec",
    "TOPICS",
    "EVENTS",
    "CAMPAIGNS",
    "CONTACTS",
    "CHECKPOINTS",
    "DLQ",
    "USAGE",
    "CALENDAR",
    "CAMPAIGN_STATS",
    "CONTACT_STATS",
    "load_schema",
    "topic_name",
]

DAY_MS = 24 * 3600 * 1000

#: Partitions of the events topic and of everything co-partitioned with it.
#: 8 lets up to 8 workers share the stream; it cannot shrink later.
EVENT_PARTITIONS = 8


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    cleanup_policy: Literal["delete", "compact"]
    #: ``retention.ms``; None keeps the broker default (compacted topics keep the latest per key).
    retention_ms: int | None
    key_format: str
    #: File name under ``topics/schemas/`` of the value's JSON Schema.
    value_schema: str
    description: str
    #: Replication factor wanted in production; ``topics create`` never asks for
    #: more than the cluster has brokers unless ``kafka.replication_factor`` says so.
    replication_factor: int = 3
    extra_config: dict[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        """The topic-level configs this spec pins (compared for drift)."""
        out: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
        out.update(self.extra_config)
        return out


EVENTS = TopicSpec(
    name="mailpulse.events.v1",
    partitions=EVENT_PARTITIONS,
    cleanup_policy="delete",
    retention_ms=30 * DAY_MS,
    key_format="{source}:{message_id}",
    value_schema="email-event.v1.json",
    description="Normalised email events from every provider, one record per fact.",
)
CAMPAIGNS = TopicSpec(
    name="mailpulse.campaigns.v1",
    partitions=EVENT_PARTITIONS,
    cleanup_policy="compact",
    retention_ms=None,
    key_format="{source}:{campaign_id}",
    value_schema="campaign.v1.json",
    description="Campaign metadata (name, subject, send time), latest per campaign.",
)
CONTACTS = TopicSpec(
    name="mailpulse.contacts.v1",
    partitions=EVENT_PARTITIONS,
    cleanup_policy="compact",
    retention_ms=None,
    key_format="{source}:{contact_id}",
    value_schema="contact.v1.json",
    description="Contact metadata (email, status), latest per contact, republished on change.",
)
CHECKPOINTS = TopicSpec(
    name="mailpulse.checkpoints.v1",
    partitions=1,
    cleanup_policy="compact",
    retention_ms=None,
    key_format="{source}/{stream}",
    value_schema="checkpoint.v1.json",
    description="Poller cursors, written in the same transaction as the events they cover.",
)
DLQ = TopicSpec(
    name="mailpulse.dlq.v1",
    partitions=1,
    cleanup_policy="delete",
    retention_ms=30 * DAY_MS,
    key_format="{source}",
    value_schema="dead-letter.v1.json",
    description="Provider records that could not be normalised, with the reason and the raw payload.",
)
USAGE = TopicSpec(
    name="mailpulse.usage.v1",
    partitions=1,
    cleanup_policy="compact",
    retention_ms=None,
    key_format="{source}:{report}:{start_date}:{end_date}",
    value_schema="usage-report.v1.json",
    description="Provider usage reports (SmarterSends conversations), latest per report window.",
)
CALENDAR = TopicSpec(
    name="mailpulse.calendar.v1",
    partitions=1,
    cleanup_policy="compact",
    retention_ms=None,
    key_format="{source}:{calendar_event_id}",
    value_schema="calendar-event.v1.json",
    description="Scheduled sends and calendar entries (SmarterSends), latest per entry.",
)
CAMPAIGN_STATS = TopicSpec(
    name="mailpulse.campaign-stats.v1",
    partitions=EVENT_PARTITIONS,
    cleanup_policy="compact",
    retention_ms=None,
    key_format="{source}:{campaign_id}",
    value_schema="campaign-stats.v1.json",
    description="Per-campaign counts and rates, as served by GET /v1/campaigns/{key}.",
)
CONTACT_STATS = TopicSpec(
    name="mailpulse.contact-stats.v1",
    partitions=EVENT_PARTITIONS,
    cleanup_policy="compact",
    retention_ms=None,
    key_format="{source}:{contact_id} or {source}:{email}",
    value_schema="contact-stats.v1.json",
    description="Per-contact counts, rates and status, as served by GET /v1/contacts/{key}.",
)

TOPICS: tuple[TopicSpec, ...] = (
    EVENTS,
    CAMPAIGNS,
    CONTACTS,
    CHECKPOINTS,
    DLQ,
    USAGE,
    CALENDAR,
    CAMPAIGN_STATS,
    CONTACT_STATS,
)


def topic_name(spec: TopicSpec, prefix: str = "") -> str:
    """The topic's name on the cluster: ``kafka.topic_prefix`` + the contract name."""
    return prefix + spec.name


def load_schema(file_name: str) -> dict[str, Any]:
    data = resources.files("mailpulse.topics").joinpath("schemas", file_name).read_bytes()
    return orjson.loads(data)
