"""SmartCQ simulator: ``GET /api/v1/sends`` and ``/api/v1/contacts`` (API facts: docs/providers/smartcq.md).

Every send carries its whole future from the start (when it is sent,
delivered, opened, ...); what the API shows is that life cut at the simulated
``now``, so ``advance()`` makes records mutate without changing ``createdAt``.
The dataset holds campaign blasts (many sends at one exact ``createdAt``),
including one instant with more than 500 sends split over two campaigns, so a
poller must split that instant by ``campaignId``/``status`` filters.
"""

from __future__ import annotations

import random
import uuid
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
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
    iso_ms,
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
    "SEND_STATUSES",
    "EMAIL_STATUSES",
    "STAGES",
    "SmartCQData",
    "generate",
    "render_send",
    "render_contact",
    "page_sends",
    "page_contacts",
    "snapshot",
    "bad_records",
    "add_routes",
    "check_auth",
    "GIANT_RUN_SIZES",
]

SEND_STATUSES = (
    "queued",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "suppressed",
    "failed",
    "delayed",
)
EMAIL_STATUSES = ("active", "unsubscribed", "bounced", "complained", "suppressed", "pending_review")
STAGES = ("lead", "prospect", "customer", "ex_customer")
#: Two campaigns launched at the same instant: together more than the 500 a page can hold.
GIANT_RUN_SIZES = (320, 290)
SENDS_LIMIT = (1, 500, 100)  # min, max, default: the API reference
CONTACTS_LIMIT = (1, 200, 50)  # the API reference

_FIRST = (
    "Mario",
    "Giulia",
    "Luca",
    "Francesca",
    "Marco",
    "Chiara",
    "Andrea",
    "Sara",
    "Paolo",
    "Elena",
    "Davide",
    "Anna",
)
_LAST = ("Rossi", "Bianchi", "Russo", "Ferrari", "Esposito", "Romano", "Colombo", "Ricci", "Marino", "Greco")
_DOMAINS = ("example.com", "example.it", "posta.example.org", "azienda.example.net")
_TAGS = ("cliente-storico", "milano", "roma", "newsletter", "vip", "fiera-2026")
_BOUNCES = ("550 5.1.1 Utente sconosciuto", "552 5.2.2 Casella piena", "550 5.7.1 Messaggio rifiutato")


@dataclass(slots=True)
class Send:
    id: str
    campaign_id: str
    contact_id: str
    created: int
    sent: int | None
    delivered: int | None
    opened: int | None
    clicked: int | None
    #: (at, status, error) in time order, starting with (created, "queued", None).
    timeline: tuple[tuple[int, str, str | None], ...]
    ubad: float


@dataclass(slots=True)
class Contact:
    id: str
    email: str
    first: str
    last: str
    source: str
    consent: str
    tags: list[str]
    acquired: int
    created: int
    ubad: float
    #: (at, field, value) in time order: emailStatus, stage and archivedAt changes.
    changes: list[tuple[int, str, Any]] = field(default_factory=list)


@dataclass
class SmartCQData:
    sends: list[Send]
    send_keys: list[int]  # createdAt of sends, ascending (bisect)
    contacts: list[Contact]  # ascending by (createdAt, id); the API lists them newest first
    contact_keys: list[int]
    contacts_by_id: dict[str, Contact]
    campaigns: list[str]


# ---------------------------------------------------------------------------
# Generation


def generate(config: SimulatorConfig) -> SmartCQData:
    rng = random.Random(f"{config.seed}/smartcq")
    bad_rng = random.Random(f"{config.seed}/smartcq/bad")
    ids = UuidFactory(f"{config.seed}/smartcq/ids")
    t0 = to_ms(config.start)
    clock = t0 + td_ms(config.history)
    end = clock + td_ms(config.horizon)

    contacts = _contacts(rng, bad_rng, ids, max(20, config.size // 4), t0, clock, end)
    # Sends go to contacts that existed before the history began.
    pool = [c for c in contacts if c.created < t0] or contacts
    n_future = round(config.size * config.future_fraction) if end > clock + MINUTE else 0
    n_hist = config.size - n_future
    campaigns: list[str] = []
    automations = [seeded_uuid(rng) for _ in range(3)]
    campaigns.extend(automations)
    plan: list[tuple[int, str, int]] = []  # (instant, campaign, count)

    def blasts(budget: int, lo: int, hi: int) -> int:
        used = 0
        while budget - used >= 20:
            k = min(budget - used, ri(rng, 20, 180))
            instant = lo + rng.randrange(max(1, (hi - lo) // MINUTE)) * MINUTE
            cid = seeded_uuid(rng)
            campaigns.append(cid)
            plan.append((instant, cid, k))
            used += k
        return used

    hist_budget = int(n_hist * 0.65)
    if config.size >= 1000:
        # The giant instant: on the hour, in the middle of the history.
        instant = t0 + (clock - t0) // 2 // HOUR * HOUR
        for k in GIANT_RUN_SIZES:
            cid = seeded_uuid(rng)
            campaigns.append(cid)
            plan.append((instant, cid, k))
            hist_budget -= k
    used_hist = blasts(max(0, hist_budget), t0, clock - 10 * MINUTE) + (
        sum(GIANT_RUN_SIZES) if config.size >= 1000 else 0
    )
    used_future = blasts(int(n_future * 0.65), clock + MINUTE, end)

    sends: list[Send] = []
    for instant, cid, k in plan:
        members = rng.sample(pool, k) if k <= len(pool) else [pick(rng, pool) for _ in range(k)]
        for rank, contact in enumerate(members):
            # A blast leaves at a steady rate after a short queueing delay.
            sent_at = instant + SECOND + rank * 15 + int(rng.random() * 500)
            sends.append(_send(rng, bad_rng, ids, cid, contact, instant, sent_at))
    for count, lo, hi in ((n_hist - used_hist, t0, clock), (n_future - used_future, clock + 1, end)):
        for _ in range(max(0, count)):
            created = ri(rng, lo, hi)
            contact = pick(rng, pool)
            # A few wait in the queue for hours (throttled): "queued" is a state one can observe.
            queued = ri(rng, HOUR, 12 * HOUR) if rng.random() < 0.02 else ri(rng, 200, 3000)
            sends.append(_send(rng, bad_rng, ids, pick(rng, automations), contact, created, created + queued))
    sends.sort(key=attrgetter("created", "id"))

    # Contacts follow their sends: a hard bounce or a complaint changes emailStatus.
    by_id = {c.id: c for c in contacts}
    for s in sends:
        for at, status, error in s.timeline:
            if status == "bounced" and error and error.startswith("5"):
                by_id[s.contact_id].changes.append((at, "emailStatus", "bounced"))
            elif status == "complained":
                by_id[s.contact_id].changes.append((at, "emailStatus", "complained"))
    for c in contacts:
        c.changes.sort(key=lambda ch: ch[0])
    return SmartCQData(
        sends=sends,
        send_keys=[s.created for s in sends],
        contacts=contacts,
        contact_keys=[c.created for c in contacts],
        contacts_by_id=by_id,
        campaigns=campaigns,
    )


def _contacts(
    rng: random.Random, bad_rng: random.Random, ids: UuidFactory, n: int, t0: int, clock: int, end: int
) -> list[Contact]:
    out: list[Contact] = []
    # Imports: contacts created at one exact instant (ties for the descending cursor), at most
    # about 100 per instant so that a 200-contact page can always hold a whole import.
    imports = [
        t0 - ri(rng, 1, 170) * DAY + int(rng.random() * DAY) // SECOND * SECOND for _ in range(max(3, n // 1000))
    ]
    for i in range(n):
        r = rng.random()
        if r < 0.05:
            created, source = ri(rng, clock + 1, end), "form"
        elif r < 0.15:
            created, source = imports[i % len(imports)], "import"
        else:
            created, source = ri(rng, t0 - 180 * DAY, clock), pick(rng, ("manual", "form", "api"))
        first, last = pick(rng, _FIRST), pick(rng, _LAST)
        c = Contact(
            id=ids(),
            email=f"{first.lower()}.{last.lower()}{i}@{pick(rng, _DOMAINS)}",
            first=first,
            last=last,
            source=source,
            consent=pick(rng, ("contract", "consent", "legitimate_interest")),
            tags=rng.sample(_TAGS, ri(rng, 0, 2)),
            acquired=created - int(rng.random() * 30 * DAY),
            created=created,
            ubad=bad_rng.random(),
        )
        initial = "pending_review" if rng.random() < 0.05 else "active"
        c.changes.append((created, "emailStatus", initial))
        c.changes.append((created, "stage", pick(rng, STAGES[:3])))
        c.changes.append((created, "archivedAt", None))
        if initial == "pending_review":
            c.changes.append((created + ri(rng, HOUR, 5 * DAY), "emailStatus", "active"))
        if rng.random() < 0.15:
            c.changes.append((ri(rng, created, end), "stage", pick(rng, STAGES[1:])))
        if rng.random() < 0.03:
            c.changes.append((ri(rng, created, end), "emailStatus", "unsubscribed"))
        elif rng.random() < 0.01:
            c.changes.append((ri(rng, created, end), "emailStatus", "suppressed"))
        if rng.random() < 0.03:
            at = ri(rng, created, end)
            c.changes.append((at, "archivedAt", iso_ms(at)))
        out.append(c)
    out.sort(key=lambda c: (c.created, c.id))
    return out


def _send(
    rng: random.Random, bad_rng: random.Random, ids: UuidFactory, cid: str, contact: Contact, created: int, sent_at: int
) -> Send:
    timeline: list[tuple[int, str, str | None]] = [(created, "queued", None)]
    sent = delivered = opened = clicked = None
    r = rng.random()
    if r < 0.015:
        timeline.append((created + 400, "suppressed", "Indirizzo nella lista di soppressione"))
    else:
        sent = sent_at
        timeline.append((sent, "sent", None))
        if r < 0.025:
            timeline.append((sent + ri(rng, SECOND, 30 * SECOND), "failed", "421 4.4.2 Connessione scaduta"))
        elif r < 0.065:
            timeline.append((sent + ri(rng, SECOND, MINUTE), "bounced", pick(rng, _BOUNCES)))
        else:
            if r < 0.095:
                deferred = sent + ri(rng, 2 * SECOND, 20 * SECOND)
                timeline.append((deferred, "delayed", "451 4.7.1 Greylisting, riprovare più tardi"))
                delivered = deferred + ri(rng, 10 * MINUTE, 36 * HOUR)
            else:
                delivered = sent + ri(rng, 300, 8 * SECOND)
            timeline.append((delivered, "delivered", None))
            if rng.random() < 0.45:
                opened = delivered + lognormal_ms(rng, 2 * HOUR, 1.6, 6 * DAY)
                timeline.append((opened, "opened", None))
                if rng.random() < 0.35:
                    clicked = opened + ri(rng, 3 * SECOND, 2 * HOUR)
                    timeline.append((clicked, "clicked", None))
            if rng.random() < 0.006:
                timeline.append((delivered + ri(rng, 10 * MINUTE, 2 * DAY), "complained", None))
            timeline.sort(key=lambda t: t[0])
    return Send(
        id=ids(),
        campaign_id=cid,
        contact_id=contact.id,
        created=created,
        sent=sent,
        delivered=delivered,
        opened=opened,
        clicked=clicked,
        timeline=tuple(timeline),
        ubad=bad_rng.random(),
    )


# ---------------------------------------------------------------------------
# Rendering (pure: record + now -> the provider's JSON)


def send_status(s: Send, now: int) -> tuple[str, str | None]:
    status, error = "queued", None
    for at, st, err in s.timeline:
        if at > now:
            break
        status, error = st, err
    return status, error


def _at(ms: int | None, now: int) -> str | None:
    return iso_ms(ms) if ms is not None and ms <= now else None


def render_send(s: Send, now: int, bad_rate: float = 0.0) -> dict[str, Any]:
    status, error = send_status(s, now)
    out: dict[str, Any] = {
        "id": s.id,
        "campaignId": s.campaign_id,
        "contactId": s.contact_id,
        "status": status,
        "sentAt": _at(s.sent, now),
        "deliveredAt": _at(s.delivered, now),
        "openedAt": _at(s.opened, now),
        "clickedAt": _at(s.clicked, now),
        "error": error,
        "createdAt": iso_ms(s.created),
    }
    kind = bad_kind(s.ubad, bad_rate)
    if kind == "missing id":
        del out["id"]
    elif kind == "unparsable timestamp":
        out["createdAt"] = "31/02/2026 25:61"
    elif kind == "unknown status":
        out["status"] = "teletrasportato"
    return out


def contact_state(c: Contact, now: int) -> tuple[dict[str, Any], int]:
    state: dict[str, Any] = {}
    updated = c.created
    for at, name, value in c.changes:
        if at > now:
            break
        state[name] = value
        updated = at
    return state, updated


def render_contact(c: Contact, now: int, bad_rate: float = 0.0) -> dict[str, Any]:
    state, updated = contact_state(c, now)
    out: dict[str, Any] = {
        "id": c.id,
        "email": c.email,
        "firstName": c.first,
        "lastName": c.last,
        "emailStatus": state["emailStatus"],
        "stage": state["stage"],
        "source": c.source,
        "consentType": c.consent,
        "tags": list(c.tags),
        "archivedAt": state["archivedAt"],
        "acquiredAt": iso_ms(c.acquired),
        "createdAt": iso_ms(c.created),
        "updatedAt": iso_ms(updated),
    }
    kind = bad_kind(c.ubad, bad_rate)
    if kind == "missing id":
        del out["id"]
    elif kind == "unparsable timestamp":
        out["updatedAt"] = "ieri pomeriggio"
    elif kind == "unknown status":
        out["emailStatus"] = "zombie"
    return out


# ---------------------------------------------------------------------------
# Queries


def page_sends(
    data: SmartCQData,
    now: int,
    *,
    since_us: int | None = None,
    limit: int = 100,
    campaign_id: str | None = None,
    status: str | None = None,
) -> tuple[list[Send], int | None]:
    """Sends with ``createdAt > since`` (ascending, ties by id), at most ``limit``; ``next`` is None at the end."""
    lo = 0 if since_us is None else bisect_right(data.send_keys, since_us // 1000)
    hi = bisect_right(data.send_keys, now)
    out: list[Send] = []
    for i in range(lo, hi):
        s = data.sends[i]
        if campaign_id is not None and s.campaign_id != campaign_id:
            continue
        if status is not None and send_status(s, now)[0] != status:
            continue
        if len(out) == limit:
            return out, out[-1].created
        out.append(s)
    return out, None


def page_contacts(
    data: SmartCQData,
    now: int,
    *,
    cursor_us: int | None = None,
    limit: int = 50,
    email_status: str | None = None,
    stage: str | None = None,
    include_archived: bool = False,
) -> tuple[list[Contact], int | None]:
    """Contacts with ``createdAt < cursor``, newest first, at most ``limit``; ``next`` is None at the end."""
    hi = bisect_right(data.contact_keys, now)
    if cursor_us is not None:
        hi = min(hi, bisect_left(data.contact_keys, -(-cursor_us // 1000)))
    out: list[Contact] = []
    for i in range(hi - 1, -1, -1):
        c = data.contacts[i]
        if email_status is not None or stage is not None or not include_archived:
            state, _ = contact_state(c, now)
            if not include_archived and state["archivedAt"] is not None:
                continue
            if email_status is not None and state["emailStatus"] != email_status:
                continue
            if stage is not None and state["stage"] != stage:
                continue
        if len(out) == limit:
            return out, out[-1].created
        out.append(c)
    return out, None


def snapshot(
    data: SmartCQData, now: int, bad_rate: float, kind: str = "sends", include_archived: bool = False
) -> list[dict[str, Any]]:
    """Everything the API would list right now, unpaginated, in API order."""
    if kind == "sends":
        hi = bisect_right(data.send_keys, now)
        return [render_send(s, now, bad_rate) for s in data.sends[:hi]]
    if kind == "contacts":
        items, _ = page_contacts(data, now, limit=len(data.contacts) + 1, include_archived=include_archived)
        return [render_contact(c, now, bad_rate) for c in items]
    raise ValueError(f"smartcq snapshot kind {kind!r}: expected 'sends' or 'contacts'")


def bad_records(data: SmartCQData, now: int, bad_rate: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    hi = bisect_right(data.send_keys, now)
    for s in data.sends[:hi]:
        kind = bad_kind(s.ubad, bad_rate)
        if kind:
            out.append({"kind": "sends", "id": s.id, "reason": kind, "payload": render_send(s, now, bad_rate)})
    hi = bisect_right(data.contact_keys, now)
    for c in data.contacts[:hi]:
        kind = bad_kind(c.ubad, bad_rate)
        if kind:
            out.append({"kind": "contacts", "id": c.id, "reason": kind, "payload": render_contact(c, now, bad_rate)})
    return out


# ---------------------------------------------------------------------------
# HTTP


def _error(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status)


def check_auth(request: web.Request, key: str, revoked: bool) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or header[7:] != key or revoked:
        return _error(401, "unauthorized", "API key mancante, non valida o revocata")
    return None


def _int(query: Any, name: str, bounds: tuple[int, int, int]) -> int:
    lo, hi, default = bounds
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{name} deve essere un intero tra {lo} e {hi}") from None
    if not lo <= value <= hi:
        raise BadInput(f"{name} deve essere un intero tra {lo} e {hi}")
    return value


def _enum(query: Any, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise BadInput(f"{name} non valido: {raw!r} (ammessi: {' | '.join(allowed)})")
    return str(raw)


async def list_sends(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    q = request.query
    try:
        limit = _int(q, "limit", SENDS_LIMIT)
        since = parse_iso_us(q["since"], "since") if q.get("since") else None
        status = _enum(q, "status", SEND_STATUSES)
        campaign = q.get("campaignId") or None
        if campaign is not None:
            try:
                uuid.UUID(campaign)
            except ValueError:
                raise BadInput(f"campaignId non valido: {campaign!r} (atteso un UUID)") from None
    except BadInput as exc:
        return _error(400, "invalid_request", str(exc))
    now, rate = sim.now_ms, sim.faults["smartcq"].bad_record_rate
    items, nxt = page_sends(sim.data("smartcq"), now, since_us=since, limit=limit, campaign_id=campaign, status=status)
    return json_response({"data": [render_send(s, now, rate) for s in items], "next": iso_ms(nxt) if nxt else None})


async def list_contacts(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    q = request.query
    try:
        limit = _int(q, "limit", CONTACTS_LIMIT)
        cursor = parse_iso_us(q["cursor"], "cursor") if q.get("cursor") else None
        email_status = _enum(q, "emailStatus", EMAIL_STATUSES)
        stage = _enum(q, "stage", STAGES)
        archived = (q.get("includeArchived") or "false").lower()
        if archived not in ("true", "false", "1", "0"):
            raise BadInput(f"includeArchived non valido: {archived!r} (true | false)")
    except BadInput as exc:
        return _error(400, "invalid_request", str(exc))
    now, rate = sim.now_ms, sim.faults["smartcq"].bad_record_rate
    items, nxt = page_contacts(
        sim.data("smartcq"),
        now,
        cursor_us=cursor,
        limit=limit,
        email_status=email_status,
        stage=stage,
        include_archived=archived in ("true", "1"),
    )
    return json_response({"data": [render_contact(c, now, rate) for c in items], "next": iso_ms(nxt) if nxt else None})


async def get_contact(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    contact = sim.data("smartcq").contacts_by_id.get(request.match_info["id"])
    now = sim.now_ms
    if contact is None or contact.created > now:
        return _error(404, "not_found", "Contatto non trovato")
    return json_response(render_contact(contact, now, sim.faults["smartcq"].bad_record_rate))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/sends", list_sends)
    app.router.add_get("/api/v1/contacts", list_contacts)
    app.router.add_get("/api/v1/contacts/{id}", get_contact)
