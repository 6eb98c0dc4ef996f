"""SuperSend simulator: ``GET /v2/events`` (API facts: docs/providers/supersend.md).

Rows are listed newest first by ``date``, so rows created while a client pages
with ``offset`` push older rows down: a client must fix the window's end when
its pass starts. A ``sent`` row mutates as the clock advances (opened,
clicked, replied, bounced flags; opens/clicks counters; ``updated_at``), and
opens, replies, bounces and unsubscribes also arrive as rows of their own.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailpulse.simulators._util import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    BadInput,
    UuidFactory,
    iso_s,
    json_response,
    lognormal_ms,
    parse_iso_us,
    pick,
    ri,
    seeded_uuid,
    td_ms,
    to_ms,
)
from mailpulse.simulators.faults import bad_kind

if TYPE_CHECKING:
    from mailpulse.simulators.simulator import SimulatorConfig

__all__ = [
    "EVENT_TYPES",
    "CHANNELS",
    "TEAM_IDS",
    "SuperSendData",
    "generate",
    "render_row",
    "query_rows",
    "snapshot",
    "bad_records",
    "add_routes",
    "check_auth",
]

EVENT_TYPES = (
    "scheduled", "sent", "open", "reply", "click", "bounce", "unsubscribe", "visit", "message",
    "follow", "unfollow", "like", "connection_request", "move_contact", "http_api_request",
)  # fmt: skip
CHANNELS = (
    "email",
    "linkedin",
    "twitter",
    "text",
    "call",
    "instagram",
    "tiktok",
    "email_warm",
    "task",
    "move_contact",
    "http_api",
)
LIMIT = (1, 100, 50)  # min, max, default: the API reference
TEAM_IDS = ("sim-team-eu", "sim-team-us")

_SUBJECTS = ("Quick question about {c}", "Following up on our conversation", "Ideas for {c}", "Last note from us")
_FIRST = ("John", "Maria", "Wei", "Fatima", "Lars", "Aisha", "Tom", "Sofia")
_LAST = ("Doe", "Smith", "Jansen", "Garcia", "Chen", "Okafor", "Novak")


@dataclass(slots=True)
class Row:
    id: str
    type: str
    channel: str
    date: int
    step: int
    campaign: int
    contact: int
    sender: int
    email_id: str | None
    thread_id: str | None
    subject: str | None
    #: Fixed flags of a fact row: opened, clicked, replied, bounced, autoresponse, accepted, linkedin_reply.
    flags: tuple[bool, bool, bool, bool, bool, bool, bool]
    #: A sent row's later facts, time order: (at, "open" | "click" | "reply" | "bounce" | "unsubscribe" | "accepted").
    updates: tuple[tuple[int, str], ...]
    ubad: float


@dataclass
class SuperSendData:
    rows: list[Row]  # ascending by (date, id); the API lists them in reverse
    dates: list[int]
    teams: list[dict[str, str]]
    campaigns: list[dict[str, Any]]  # {id, name, team}
    contacts: list[dict[str, Any]]
    senders: list[dict[str, Any]]
    cache: OrderedDict[Any, list[int]]


# ---------------------------------------------------------------------------
# Generation


def generate(config: SimulatorConfig) -> SuperSendData:
    rng = random.Random(f"{config.seed}/supersend")
    bad_rng = random.Random(f"{config.seed}/supersend/bad")
    ids = UuidFactory(f"{config.seed}/supersend/ids")
    t0 = to_ms(config.start)
    clock = t0 + td_ms(config.history)
    end = clock + td_ms(config.horizon)
    # Fixed ids whatever the seed, so that a config can name a team (TeamId / team_id).
    teams = [{"id": TEAM_IDS[0], "name": "Sales EU"}, {"id": TEAM_IDS[1], "name": "Sales US"}]
    campaigns = [
        {"id": seeded_uuid(rng), "name": name, "team": i % len(teams)}
        for i, name in enumerate(
            ("Q4 Outreach", "Webinar follow-up", "Partner intro", "Re-engagement", "LinkedIn warmup")
        )
    ]
    contacts = []
    for i in range(max(10, config.size // 2)):
        first, last = pick(rng, _FIRST), pick(rng, _LAST)
        contacts.append(
            {
                "id": seeded_uuid(rng),
                "email": f"{first.lower()}.{last.lower()}{i}@prospect.example",
                "first_name": first,
                "last_name": last,
                "linkedin_url": f"https://www.linkedin.com/in/{first.lower()}-{last.lower()}-{i}"
                if rng.random() < 0.4
                else None,
            }
        )
    senders = [
        {"id": seeded_uuid(rng), "email": f"{name.lower()}@acme.example", "send_as": f"{name} at Acme"}
        for name in ("Sales", "Anna", "Bram")
    ]

    rows: list[Row] = []
    for _ in range(config.size):
        sent = ri(rng, clock + 1, end) if end > clock and rng.random() < config.future_fraction else ri(rng, t0, clock)
        sent = sent // SECOND * SECOND
        if rng.random() < 0.9:
            rows.extend(
                _email_flow(
                    rng,
                    bad_rng,
                    ids,
                    sent,
                    int(rng.random() * 4),
                    int(rng.random() * len(contacts)),
                    int(rng.random() * len(senders)),
                    campaigns,
                )
            )
        else:
            rows.extend(
                _linkedin_flow(
                    rng, bad_rng, ids, sent, int(rng.random() * len(contacts)), int(rng.random() * len(senders))
                )
            )
    rows.sort(key=attrgetter("date", "id"))
    return SuperSendData(
        rows=rows,
        dates=[r.date for r in rows],
        teams=teams,
        campaigns=campaigns,
        contacts=contacts,
        senders=senders,
        cache=OrderedDict(),
    )


_NO_FLAGS = (False, False, False, False, False, False, False)


def _email_flow(
    rng: random.Random,
    bad_rng: random.Random,
    ids: UuidFactory,
    sent: int,
    campaign: int,
    contact: int,
    sender: int,
    campaigns: list[dict[str, Any]],
) -> list[Row]:
    step = ri(rng, 1, 3)
    subject = _SUBJECTS[step - 1].format(c=campaigns[campaign]["name"])
    email_id, thread_id = ids(), ids()

    def row(kind: str, at: int, flags: tuple[bool, ...] = _NO_FLAGS, updates: tuple[tuple[int, str], ...] = ()) -> Row:
        return Row(
            ids(),
            kind,
            "email",
            at // SECOND * SECOND,
            step,
            campaign,
            contact,
            sender,
            email_id,
            thread_id,
            subject,
            flags,
            updates,
            bad_rng.random(),
        )  # type: ignore[arg-type]

    out = [row("scheduled", sent - ri(rng, 5 * MINUTE, DAY))]
    updates: list[tuple[int, str]] = []
    if rng.random() < 0.03:
        bounced = sent + ri(rng, 5 * SECOND, 10 * MINUTE)
        updates.append((bounced, "bounce"))
        out.append(row("bounce", bounced, (False, False, False, True, False, False, False)))
    else:
        if rng.random() < 0.4:
            at = sent + lognormal_ms(rng, 2 * HOUR, 1.5, 6 * DAY)
            clicks_on = rng.random() < 0.3
            for k in range(pick(rng, (1, 1, 2, 3))):
                clicked = clicks_on and k == 0
                updates.append((at, "open"))
                if clicked:
                    updates.append((at, "click"))
                out.append(row("open", at, (True, clicked, False, False, False, False, False)))
                at += ri(rng, MINUTE, DAY)
        if rng.random() < 0.06:
            replied = sent + ri(rng, 10 * MINUTE, 2 * DAY)
            auto = rng.random() < 0.25
            updates.append((replied, "reply"))
            out.append(row("reply", replied, (False, False, True, False, auto, False, False)))
        if rng.random() < 0.01:
            unsub = sent + ri(rng, HOUR, 3 * DAY)
            updates.append((unsub, "unsubscribe"))
            out.append(row("unsubscribe", unsub, _NO_FLAGS))
    updates.sort()
    out.append(row("sent", sent, _NO_FLAGS, tuple((at // SECOND * SECOND, what) for at, what in updates)))
    return out


def _linkedin_flow(
    rng: random.Random, bad_rng: random.Random, ids: UuidFactory, at: int, contact: int, sender: int
) -> list[Row]:
    campaign = 4  # "LinkedIn warmup"
    thread_id = ids()

    def row(
        kind: str, when: int, flags: tuple[bool, ...] = _NO_FLAGS, updates: tuple[tuple[int, str], ...] = ()
    ) -> Row:
        return Row(
            ids(),
            kind,
            "linkedin",
            when // SECOND * SECOND,
            1,
            campaign,
            contact,
            sender,
            None,
            thread_id,
            None,
            flags,
            updates,
            bad_rng.random(),
        )  # type: ignore[arg-type]

    accepted = at + ri(rng, HOUR, 3 * DAY) if rng.random() < 0.5 else None
    out = [
        row("visit", at - ri(rng, MINUTE, HOUR)),
        row("connection_request", at, _NO_FLAGS, ((accepted, "accepted"),) if accepted else ()),
    ]
    if accepted is not None:
        out.append(row("message", accepted + ri(rng, MINUTE, HOUR)))
        if rng.random() < 0.3:
            out.append(row("reply", accepted + ri(rng, HOUR, 2 * DAY), (False, False, True, False, False, False, True)))
    return out


# ---------------------------------------------------------------------------
# Rendering


def render_row(data: SuperSendData, r: Row, now: int, bad_rate: float = 0.0) -> dict[str, Any]:
    opened, clicked, replied, bounced, auto, accepted, li_reply = r.flags
    opens = clicks = replies = unsubs = 0
    if r.type == "open":
        opens, clicks = 1, int(clicked)
    elif r.type == "reply":
        replies = 1
    elif r.type == "unsubscribe":
        unsubs = 1
    updated = r.date
    for at, what in r.updates:
        if at > now:
            break
        updated = max(updated, at)
        if what == "open":
            opens += 1
        elif what == "click":
            clicks += 1
        elif what == "reply":
            replies += 1
        elif what == "bounce":
            bounced = True
        elif what == "unsubscribe":
            unsubs += 1
        elif what == "accepted":
            accepted = True
    if r.updates:
        opened, clicked, replied = opens > 0, clicks > 0, replies > 0
    campaign = data.campaigns[r.campaign]
    contact = data.contacts[r.contact]
    sender = data.senders[r.sender]
    date_s = iso_s(r.date)
    out: dict[str, Any] = {
        "id": r.id,
        "type": r.type,
        "channel": r.channel,
        "date": date_s,
        "sequence_step": r.step,
        "opened": opened,
        "clicked": clicked,
        "replied": replied,
        "bounced": bounced,
        "autoresponse": auto,
        "opens": opens,
        "clicks": clicks,
        "replies": replies,
        "unsubscribes": unsubs,
        "accepted_connection_request": accepted,
        "linkedin_reply": li_reply,
        "twitter_reply": False,
        "subject": r.subject,
        "email_id": r.email_id,
        "thread_id": r.thread_id,
        "contact": dict(contact),
        "campaign": {"id": campaign["id"], "name": campaign["name"]},
        "sender": dict(sender),
        "campaign_id": campaign["id"],
        "contact_id": contact["id"],
        "sender_id": sender["id"],
        "created_at": date_s,
        "updated_at": date_s if updated == r.date else iso_s(updated),
    }
    kind = bad_kind(r.ubad, bad_rate)
    if kind == "missing id":
        del out["id"]
    elif kind == "unparsable timestamp":
        out["date"] = "last Tuesday"
    elif kind == "unknown status":
        out["type"] = "mystery_event"
    return out


# ---------------------------------------------------------------------------
# Queries


def query_rows(
    data: SuperSendData,
    now: int,
    *,
    team: str | None = None,
    campaign: str | None = None,
    contact: str | None = None,
    sender: str | None = None,
    type: str | None = None,
    channel: str | None = None,
    start_us: int | None = None,
    end_us: int | None = None,
) -> list[int]:
    """Positions of matching rows, newest first (date desc, then id desc)."""
    if type == "click":
        type = "open"  # "The click type filter maps to open events."
    lo = 0 if start_us is None else bisect_left(data.dates, -(-start_us // 1000))
    hi = bisect_right(data.dates, now)
    if end_us is not None:
        hi = min(hi, bisect_right(data.dates, end_us // 1000))
    key = (lo, hi, team, campaign, contact, sender, type, channel)
    cached = data.cache.get(key)
    if cached is not None:
        data.cache.move_to_end(key)
        return cached
    team_idx = {i for i, c in enumerate(data.campaigns) if data.teams[c["team"]]["id"] == team} if team else None
    camp_idx = next((i for i, c in enumerate(data.campaigns) if c["id"] == campaign), -1) if campaign else None
    contact_idx = next((i for i, c in enumerate(data.contacts) if c["id"] == contact), -1) if contact else None
    sender_idx = next((i for i, s in enumerate(data.senders) if s["id"] == sender), -1) if sender else None
    out = []
    for pos in range(hi - 1, lo - 1, -1):
        r = data.rows[pos]
        if (
            (type is not None and r.type != type)
            or (channel is not None and r.channel != channel)
            or (team_idx is not None and r.campaign not in team_idx)
            or (camp_idx is not None and r.campaign != camp_idx)
            or (contact_idx is not None and r.contact != contact_idx)
            or (sender_idx is not None and r.sender != sender_idx)
        ):
            continue
        out.append(pos)
    data.cache[key] = out
    if len(data.cache) > 16:
        data.cache.popitem(last=False)
    return out


def snapshot(
    data: SuperSendData, now: int, bad_rate: float, kind: str = "events", **filters: Any
) -> list[dict[str, Any]]:
    """All rows visible now, newest first (``kind="teams"|"campaigns"`` for the reference lists)."""
    if kind == "teams":
        return [dict(t) for t in data.teams]
    if kind == "campaigns":
        return [{"id": c["id"], "name": c["name"], "team_id": data.teams[c["team"]]["id"]} for c in data.campaigns]
    if kind != "events":
        raise ValueError(f"supersend snapshot kind {kind!r}: expected 'events', 'teams' or 'campaigns'")
    return [render_row(data, data.rows[p], now, bad_rate) for p in query_rows(data, now, **filters)]


def bad_records(data: SuperSendData, now: int, bad_rate: float) -> list[dict[str, Any]]:
    hi = bisect_right(data.dates, now)
    out = []
    for r in data.rows[:hi]:
        kind = bad_kind(r.ubad, bad_rate)
        if kind:
            out.append({"kind": "events", "id": r.id, "reason": kind, "payload": render_row(data, r, now, bad_rate)})
    return out


# ---------------------------------------------------------------------------
# HTTP


def _error(status: int, code: str, message: str, request_id: str) -> web.Response:
    return json_response(
        {"success": False, "error": {"code": code, "message": message}, "request_id": request_id}, status=status
    )


def _request_id(sim: Any) -> str:
    # Deterministic per simulator and request number.
    n = sim.requests_served
    return "req_" + hashlib.blake2b(f"{sim.config.seed}/{n}".encode(), digest_size=12).hexdigest()


def check_auth(request: web.Request, key: str, revoked: bool) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or header[7:] != key or revoked:
        rid = _request_id(request.app["sim"])
        return _error(401, "UNAUTHORIZED", "Invalid or missing API key", rid)
    return None


def _int(query: Any, name: str, lo: int, hi: int | None, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{name} must be an integer") from None
    if value < lo or (hi is not None and value > hi):
        raise BadInput(f"{name} must be between {lo} and {hi}" if hi is not None else f"{name} must be >= {lo}")
    return value


async def list_events(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    q = request.query
    rid = _request_id(sim)
    try:
        limit = _int(q, "limit", LIMIT[0], LIMIT[1], LIMIT[2])
        offset = _int(q, "offset", 0, None, 0)
        type_ = q.get("type") or None
        if type_ is not None and type_ not in EVENT_TYPES:
            raise BadInput(f"type must be one of: {', '.join(EVENT_TYPES)}")
        channel = q.get("channel") or None
        if channel is not None and channel not in CHANNELS:
            raise BadInput(f"channel must be one of: {', '.join(CHANNELS)}")
        start = parse_iso_us(q["start_date"], "start_date") if q.get("start_date") else None
        end = parse_iso_us(q["end_date"], "end_date") if q.get("end_date") else None
    except BadInput as exc:
        return _error(400, "VALIDATION_ERROR", str(exc), rid)
    data, now = sim.data("supersend"), sim.now_ms
    positions = query_rows(
        data,
        now,
        team=q.get("TeamId") or None,
        campaign=q.get("CampaignId") or None,
        contact=q.get("ContactId") or None,
        sender=q.get("SenderId") or None,
        type=type_,
        channel=channel,
        start_us=start,
        end_us=end,
    )
    rate = sim.faults["supersend"].bad_record_rate
    page = [render_row(data, data.rows[p], now, rate) for p in positions[offset : offset + limit]]
    total = len(positions)
    return json_response(
        {
            "success": True,
            "data": page,
            "pagination": {"total": total, "limit": limit, "offset": offset, "hasMore": offset + len(page) < total},
            "request_id": rid,
        }
    )


async def get_event(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    data, now = sim.data("supersend"), sim.now_ms
    rid = _request_id(sim)
    wanted = request.match_info["id"]
    for r in data.rows[: bisect_right(data.dates, now)]:
        if r.id == wanted:
            return json_response(
                {
                    "success": True,
                    "data": render_row(data, r, now, sim.faults["supersend"].bad_record_rate),
                    "request_id": rid,
                }
            )
    return _error(404, "NOT_FOUND", "Event not found", rid)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2/events", list_events)
    app.router.add_get("/v2/events/{id}", get_event)
