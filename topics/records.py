"""Values of the metadata, checkpoint and dead-letter topics.

Plain data types with a JSON form that matches ``topics/schemas/*.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from mailpulse.topics.events import format_timestamp

__all__ = [
    "CampaignMetadata",
    "ContactRecord",
    "Checkpoint",
    "DeadLetter",
    "encode_record",
]


@dataclass(frozen=True, slots=True)
class CampaignMetadata:
    """``mailpulse.campaigns.v1``, key ``{source}:{campaign_id}``."""

    source: str
    provider: str
    campaign_id: str
    observed_at: datetime
    name: str | None = None
    subject: str | None = None
    send_time: datetime | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.source}:{self.campaign_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "provider": self.provider,
            "campaign_id": self.campaign_id,
            "name": self.name,
            "subject": self.subject,
            "send_time": None if self.send_time is None else format_timestamp(self.send_time),
            "observed_at": format_timestamp(self.observed_at),
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """``mailpulse.contacts.v1``, key ``{source}:{contact_id}``."""

    source: str
    provider: str
    contact_id: str
    observed_at: datetime
    email: str | None = None
    #: The provider's own status of the address (active, unsubscribed, bounced, ...).
    status: str | None = None
    updated_at: datetime | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.source}:{self.contact_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "provider": self.provider,
            "contact_id": self.contact_id,
            "email": self.email,
            "status": self.status,
            "updated_at": None if self.updated_at is None else format_timestamp(self.updated_at),
            "observed_at": format_timestamp(self.observed_at),
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """``mailpulse.checkpoints.v1``, key ``{source}/{stream}``.

    ``cursor`` is whatever the stream's paginator needs to resume (a timestamp,
    a window end, an export id); it is written in the same Kafka transaction
    as the events it covers.
    """

    source: str
    provider: str
    stream: str
    cursor: Any
    committed_at: datetime

    @property
    def key(self) -> str:
        return f"{self.source}/{self.stream}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "provider": self.provider,
            "stream": self.stream,
            "cursor": self.cursor,
            "committed_at": format_timestamp(self.committed_at),
        }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """``mailpulse.dlq.v1``, key ``{source}``: a record that could not be normalised."""

    source: str
    provider: str
    stream: str
    #: What is wrong, naming the field ("occurred_at: unparsable timestamp '2026-13-01'").
    reason: str
    #: The provider's record as received (JSON value, or text when it was not JSON).
    raw: Any
    observed_at: datetime

    @property
    def key(self) -> str:
        return self.source

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "provider": self.provider,
            "stream": self.stream,
            "reason": self.reason,
            "raw": self.raw,
            "observed_at": format_timestamp(self.observed_at),
        }


def encode_record(record: CampaignMetadata | ContactRecord | Checkpoint | DeadLetter) -> bytes:
    return orjson.dumps(record.to_dict())
