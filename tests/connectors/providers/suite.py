"""The standard checks every provider's ``normalise`` passes on its recorded pages (SDK-style test factory)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from mailpulse.connectors.errors import NormalisationError
from mailpulse.topics.events import EmailEvent, event_from_dict, event_to_dict

FIXTURES = Path(__file__).parent.parent / "fixtures"
OBSERVED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

Normalise = Callable[[Any, datetime], Sequence[Any]]


def load(provider: str, name: str) -> Any:
    return orjson.loads((FIXTURES / provider / name).read_bytes())


def make_normalise_tests(
    records: Callable[[], list[Any]],
    normalise: Normalise,
    *,
    bad_fields: set[str],
    fact_is_message_and_type: bool = True,
) -> type:
    """A test class: every recorded item normalises (or fails naming one of ``bad_fields``), ids are unique and stable.

    ``fact_is_message_and_type``: a fact is (message, type), so two rows showing it share one id
    (SmartCQ, SuperSend); otherwise every record is a fact of its own (SMTPeter).
    """

    class StandardNormaliseTests:
        def test_every_recorded_record_normalises_or_names_the_bad_field(self) -> None:
            good = bad = 0
            for raw in records():
                try:
                    normalise(raw, OBSERVED)
                    good += 1
                except NormalisationError as exc:
                    assert exc.reason.split(":")[0] in bad_fields, exc.reason
                    bad += 1
            assert good > 0 and bad > 0, "the recorded pages hold good and corrupted records"

        def test_event_ids_are_unique_and_stable_across_reads(self) -> None:
            first = _events(records(), normalise)
            again = _events(records(), normalise)
            assert first, "the recorded pages yield events"
            ids = [e.event_id for e in first]
            if fact_is_message_and_type:
                pairs = {(e.message_id, e.type) for e in first}
                assert len(set(ids)) == len(pairs)
                assert len({(e.event_id, e.message_id, e.type) for e in first}) == len(pairs)
            else:
                assert len(ids) == len(set(ids))
            assert ids == [e.event_id for e in again]
            assert all(e.event_id and len(e.event_id) == 32 for e in first)

        def test_events_survive_the_topic_codec(self) -> None:
            for e in _events(records(), normalise):
                assert event_from_dict(orjson.loads(orjson.dumps(event_to_dict(e)))) == e

    return StandardNormaliseTests


def _events(raws: list[Any], normalise: Normalise) -> list[EmailEvent]:
    out: list[EmailEvent] = []
    for raw in raws:
        try:
            out.extend(o for o in normalise(raw, OBSERVED) if isinstance(o, EmailEvent))
        except NormalisationError:
            pass
    return out


__all__ = ["FIXTURES", "OBSERVED", "load", "make_normalise_tests", "pytest"]
