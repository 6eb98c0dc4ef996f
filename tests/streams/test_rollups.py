"""A rollup kept partial by partial equals one rebuilt from the final values, whatever the order of changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailpulse.streams.aggregates import merge_partial
from mailpulse.streams.mailbox import MailboxClassifier
from mailpulse.streams.rollups import UNKNOWN, Rollup, campaign_group, contact_address, contact_group, windows_of

NOW = 1_800_000_000_000
HOUR = 3_600_000
CURRENT = NOW - NOW % HOUR


def _partial(partition: int, seq: int, messages: int, sent: int, email: str | None, hour_back: int) -> dict:
    p = {
        "partition": partition,
        "version": [1, seq],
        "provider": "smtpeter",
        "messages": messages,
        "counts": [sent] + [0] * 14,
        "first_at": NOW,
        "last_at": NOW,
        "hourly": {str(CURRENT - hour_back * HOUR): [sent] + [0] * 12} if sent else {},
    }
    if email is not None:
        p["email"] = email
    return p


updates = st.lists(
    st.one_of(
        st.tuples(
            st.just("partial"),
            st.sampled_from(["src:u1", "src:u2", "src:a@gmail.com"]),
            st.integers(0, 3),
            st.integers(0, 4),
            st.sampled_from([None, "x@gmail.com", "y@yahoo.fr"]),
            st.integers(0, 30),
        ),
        st.tuples(st.just("meta"), st.sampled_from(["src:u1", "src:u2"]), st.sampled_from([None, "z@icloud.com"])),
    ),
    max_size=40,
)


def _replay(events: list, group_of) -> tuple[Rollup, dict]:
    rollup, values, seq = Rollup(group_of), {}, 0
    for event in events:
        key = event[1]
        old = values.get(key)
        if event[0] == "meta":
            new = dict(old or {})
            new["meta"] = {"email": event[2]}
        else:
            seq += 1
            _, _, partition, sent, email, back = event
            new = merge_partial(old, _partial(partition, seq, 1 if sent else 0, sent, email, back))
            if new is None:
                continue
        values[key] = new
        rollup.replace(key, old, new, NOW)
    return rollup, values


def _snapshot(rollup: Rollup) -> dict:
    return {
        g: (t.counts, {h: r for h, r in t.hourly.items() if any(r)})
        for g, t in rollup.groups.items()
        if any(t.counts) or any(any(r) for r in t.hourly.values())
    }


@given(updates)
def test_contact_rollup_kept_by_replacement_equals_a_rebuild(events):
    group_of = contact_group(MailboxClassifier().classify)
    kept, values = _replay(events, group_of)
    rebuilt = Rollup(group_of)
    rebuilt.rebuild(values.items(), NOW)
    assert _snapshot(kept) == _snapshot(rebuilt)


@given(updates)
def test_campaign_rollup_kept_by_replacement_equals_a_rebuild(events):
    kept, values = _replay([e for e in events if e[0] == "partial"], campaign_group)
    rebuilt = Rollup(campaign_group)
    rebuilt.rebuild(values.items(), NOW)
    assert _snapshot(kept) == _snapshot(rebuilt)


def test_a_contact_without_an_address_is_unknown_until_its_metadata_moves_it():
    rollup = Rollup(contact_group(MailboxClassifier().classify))
    first = merge_partial(None, _partial(0, 1, 1, 1, None, 0))
    rollup.replace("src:u1", None, first, NOW)
    assert set(rollup.groups) == {("smtpeter", "src", UNKNOWN)}
    later = {**first, "meta": {"email": "a@outlook.com"}}
    rollup.replace("src:u1", first, later, NOW)
    assert set(rollup.groups) == {("smtpeter", "src", "microsoft")}
    assert rollup.groups[("smtpeter", "src", "microsoft")].counts[0] == 1


def test_windows_sum_the_current_previous_and_last_24_hours():
    hourly = {CURRENT: [1] * 13, CURRENT - HOUR: [2] * 13, CURRENT - 23 * HOUR: [4] * 13, CURRENT - 24 * HOUR: [8] * 13}
    got = windows_of(hourly, NOW)
    assert got["current_hour"][0] == 1 and got["previous_hour"][0] == 2 and got["last_24h"][0] == 7


@given(updates)
def test_contact_group_is_the_contacts_provider_source_and_the_mailbox_of_its_address(events):
    classifier = MailboxClassifier()
    group_of = contact_group(classifier.classify)
    _, values = _replay(events, group_of)
    for key, value in values.items():
        live = [p for p in value.get("partials", {}).values() if p.get("messages", 0) > 0]
        if not live:
            assert group_of(key, value) is None
            continue
        # The address, written out: the metadata's, else the smallest the events carried, else the key's.
        meta_email = (value.get("meta") or {}).get("email")
        emails = [p["email"] for p in live if p.get("email")]
        address = meta_email or (min(emails) if emails else None) or (key.split(":", 1)[1] if "@" in key else None)
        assert contact_address(key, value) == address
        expected = (
            live[0]["provider"],
            key.split(":")[0],
            UNKNOWN if address is None else classifier.classify(address),
        )
        assert group_of(key, value) == expected
