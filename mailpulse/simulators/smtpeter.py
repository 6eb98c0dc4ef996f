"""SMTPeter simulator: ``GET /v1/events/{messageid|email|template|tags}/{value}`` (API facts: docs/providers/smtpeter.md).

Events have no ids, only ``data.id`` (the message id) and a time to the
second, so identical duplicates exist (a few opens are logged twice in the same
second, as real pixel fetches are). Windows are whole UTC days, ``end``
exclusive, at most one calendar month per call.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailpulse.simulators._util import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    add_months,
    from_ms,
    json_response,
    lognormal_ms,
    pick,
    ri,
    sql_s,
    td_ms,
    to_ms,
)
from mailpulse.simulators.faults import bad_kind

if TYPE_CHECKING:
    from mailpulse.simulators.simulator import SimulatorConfig

__all__ = [
    "EVENT_TYPES",
    "SELECTORS",
    "SMTPeterData",
    "generate",
    "render_event",
    "query_events",
    "resolve_window",
    "snapshot",
    "bad_records",
    "add_routes",
    "check_auth",
]

EVENT_TYPES = ("attempt", "delivery", "failure", "bounce", "open", "click", "response", "abuse")
SELECTORS = ("messageid", "email", "template", "tags")

_CATEGORIES = (
    # (share, tag strings, templates)
    (0.35, ("newsletter", "newsletter", "newsletter;weekly", "newsletter;monthly;it"), (42, 42, 42, 42, 42, 42, 43)),
    (0.40, ("transactional;receipt", "transactional;password-reset", "transactional;receipt;it"), (7, 8, 0)),
    (0.25, ("promo", "promo;black-friday"), (42, 51, 0, 0)),
)
_GEO = (
    ("Amsterdam", "Netherlands", "NL", "NH"),
    ("Milano", "Italy", "IT", "25"),
    ("Berlin", "Germany", "DE", "BE"),
    ("Lyon", "France", "FR", "ARA"),
    ("", "", "", ""),
)
_AGENTS = (
    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36\nAccept: image/avif,image/webp,*/*",
    "User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)\nAccept: */*",
    "User-Agent: Mozilla/5.0 (via ggpht.com GoogleImageProxy)\nAccept: image/*",
)
_URLS = (
    "https://acme.example/news",
    "https://acme.example/shop?c=winter",
    "https://acme.example/account",
    "https://acme.example/unsubscribe",
)
_HARD = (
    (550, "5.1.1", "User unknown", "rcpt"),
    (550, "5.7.1", "Message rejected as spam", "data"),
    (554, "5.0.0", "Mailbox unavailable", "rcpt"),
)
_SOFT = ((421, "4.4.1", "Connection timed out", "connect"), (452, "4.2.2", "Mailbox full", "rcpt"))
_DSN = "Content-Type: multipart/report; report-type=delivery-status\n\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 No such user"
_OOO = "Subject: Automatic reply: out of office\n\nI am out of the office until Monday."


@dataclass(slots=True)
class Message:
    id: str
    recipient: str
    envelope: str
    tags: str
    tagset: frozenset[str]
    template: int
    sent: int


@dataclass
class SMTPeterData:
    messages: list[Message]
    #: (time_ms, message index, event type, extra fields tuple, ubad), ascending by time.
    events: list[tuple[int, int, str, tuple[Any, ...], float]]
    times: list[int]
    by_id: dict[str, int]
    _indexes: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def index(self, kind: str) -> dict[str, list[int]]:
        """Event positions (ascending) per selector value, built on first use."""
        if kind not in self._indexes:
            idx: dict[str, list[int]] = {}
            for pos, ev in enumerate(self.events):
                msg = self.messages[ev[1]]
                if kind == "messageid":
                    keys: Any = (msg.id,)
                elif kind == "email":
                    keys = (msg.recipient.lower(),)
                elif kind == "template":
                    keys = (str(msg.template),)
                else:
                    keys = msg.tagset
                for key in keys:
                    idx.setdefault(key, []).append(pos)
            self._indexes[kind] = idx
        return self._indexes[kind]


# ---------------------------------------------------------------------------
# Generation


def generate(config: SimulatorConfig) -> SMTPeterData:
    rng = random.Random(f"{config.seed}/smtpeter")
    bad_rng = random.Random(f"{config.seed}/smtpeter/bad")
    t0 = to_ms(config.start)
    clock = t0 + td_ms(config.history)
    end = clock + td_ms(config.horizon)
    n = config.size
    recipients = [f"user{i}@{pick(rng, ('example.com', 'example.nl', 'example.it'))}" for i in range(max(10, n // 3))]

    # Newsletter issues go out in batches (about 20 attempts per second); the rest one by one.
    starts: list[tuple[int, int]] = []  # (attempt time, category)
    n_news = int(n * _CATEGORIES[0][0])
    while len(starts) < n_news:
        issue = _pick_time(rng, t0, clock, end, config.future_fraction) // HOUR * HOUR
        for rank in range(min(n_news - len(starts), ri(rng, 50, 300))):
            starts.append((issue + rank // 20 * SECOND, 0))
    while len(starts) < n:
        cat = 1 if rng.random() < _CATEGORIES[1][0] / (1 - _CATEGORIES[0][0]) else 2
        starts.append((_pick_time(rng, t0, clock, end, config.future_fraction) // SECOND * SECOND, cat))
    messages: list[Message] = []
    events: list[tuple[int, int, str, tuple[Any, ...], float]] = []
    for i, (sent, cat) in enumerate(starts):
        _, tag_choices, templates = _CATEGORIES[cat]
        tags = pick(rng, tag_choices)
        mid = f"{rng.getrandbits(96):024x}"
        msg = Message(
            id=mid,
            recipient=pick(rng, recipients),
            envelope=f"bounce+{mid[:10]}@bounces.acme.example",
            tags=tags,
            tagset=frozenset(tags.split(";")),
            template=pick(rng, templates),
            sent=sent,
        )
        messages.append(msg)
        for at, etype, extra in _lifecycle(rng, sent):
            events.append((at // SECOND * SECOND, i, etype, extra, bad_rng.random()))
    events.sort(key=itemgetter(0, 1))
    return SMTPeterData(
        messages=messages,
        events=events,
        times=[e[0] for e in events],
        by_id={m.id: i for i, m in enumerate(messages)},
    )


def _pick_time(rng: random.Random, t0: int, clock: int, end: int, future_fraction: float) -> int:
    """A creation time: in the history, or (with probability future_fraction) after the clock start."""
    if end > clock and rng.random() < future_fraction:
        return ri(rng, clock + 1, end)
    return ri(rng, t0, clock)


def _lifecycle(rng: random.Random, sent: int) -> list[tuple[int, str, tuple[Any, ...]]]:
    out: list[tuple[int, str, tuple[Any, ...]]] = [(sent, "attempt", ())]
    mx = f"203.0.113.{ri(rng, 1, 254)}"
    out_ip = f"185.62.1.{ri(rng, 1, 30)}"
    r = rng.random()
    if r < 0.03:
        if rng.random() < 0.7:
            code, status, text, state = pick(rng, _HARD)
            out.append(
                (sent + ri(rng, 1, 20) * SECOND, "failure", (0, out_ip, mx, "permanent", code, status, text, state))
            )
        else:
            code, status, text, state = pick(rng, _SOFT)
            gave_up = sent + ri(rng, DAY, 3 * DAY)
            out.append((gave_up, "failure", (ri(rng, 5, 12), out_ip, mx, "temporary", code, status, text, state)))
        return out
    attempt = 0 if rng.random() < 0.95 else ri(rng, 1, 3)
    delivered = sent + ri(rng, 1, 20) * SECOND + attempt * ri(rng, 5, 30) * MINUTE
    out.append((delivered, "delivery", (attempt, out_ip, mx)))
    if rng.random() < 0.02:
        out.append((delivered + ri(rng, MINUTE, 6 * HOUR), "bounce", (_DSN,)))
        return out
    if rng.random() < 0.015:
        out.append((delivered + ri(rng, 5 * MINUTE, 2 * HOUR), "response", (_OOO,)))
    if rng.random() < 0.45:
        at = delivered + lognormal_ms(rng, 3 * HOUR, 1.6, 10 * DAY)
        opens: list[int] = []
        for _ in range(pick(rng, (1, 1, 1, 2, 2, 3, 4))):
            opens.append(at)
            extra = (
                f"198.51.100.{ri(rng, 1, 254)}",
                int(rng.random() * len(_AGENTS)),
                int(rng.random() * len(_GEO)),
                "https",
            )
            out.append((at, "open", extra))
            if rng.random() < 0.04:
                out.append((at, "open", extra))  # the same pixel fetch logged twice: an identical duplicate
            at += ri(rng, MINUTE, 2 * DAY)
        if rng.random() < 0.3:
            for _ in range(pick(rng, (1, 1, 2))):
                clicked = pick(rng, opens) + ri(rng, 5 * SECOND, HOUR)
                extra = (
                    f"198.51.100.{ri(rng, 1, 254)}",
                    int(rng.random() * len(_AGENTS)),
                    int(rng.random() * len(_GEO)),
                    "https",
                    int(rng.random() * len(_URLS)),
                )
                out.append((clicked, "click", extra))
    if rng.random() < 0.004:
        out.append((delivered + ri(rng, HOUR, 3 * DAY), "abuse", ()))
    return out


# ---------------------------------------------------------------------------
# Rendering


def render_event(
    data: SMTPeterData, ev: tuple[int, int, str, tuple[Any, ...], float], bad_rate: float = 0.0
) -> dict[str, Any]:
    at, mi, etype, extra, ubad = ev
    m = data.messages[mi]
    d: dict[str, Any] = {"id": m.id, "time": sql_s(at)}
    if etype == "attempt":
        d.update(envelope=m.envelope, recipient=m.recipient, properties="inlinecss;trackbounces;trackopens;trackclicks")
    elif etype == "delivery":
        d.update(envelope=m.envelope, recipient=m.recipient, attempt=extra[0], **{"from": extra[1], "to": extra[2]})
    elif etype == "failure":
        attempt, src, dst, kind, code, status, text, state = extra
        d.update(envelope=m.envelope, recipient=m.recipient, attempt=attempt, **{"from": src, "to": dst})
        d.update(type=kind, code=code, status=status, description=text, state=state)
    elif etype in ("bounce", "response"):
        d.update(envelope=m.envelope, recipient=m.recipient, mime=extra[0])
    elif etype in ("open", "click"):
        ip, agent, geo, protocol = extra[:4]
        city, country, cc, region = _GEO[geo]
        d.update(headers=_AGENTS[agent], ip=ip, protocol=protocol)
        if etype == "click":
            url = _URLS[extra[4]]
            d.update(url=url, destination=url + ("&" if "?" in url else "?") + "utm_source=smtpeter")
        d.update(recipient=m.recipient, city=city, countryname=country, countrycode=cc, regioncode=region)
    else:  # abuse
        d.update(envelope=m.envelope, recipient=m.recipient)
    d["tags"] = m.tags
    # templateid on every event (0 = none): the log-file docs list it for some, the events call returns it for all.
    d["templateid"] = m.template
    kind = bad_kind(ubad, bad_rate)
    if kind == "missing id":
        del d["id"]
    elif kind == "unparsable timestamp":
        d["time"] = "2026-13-45 99:99:99"
    elif kind == "unknown status":
        etype = "teleport"
    return {"event": etype, "data": d}


# ---------------------------------------------------------------------------
# Queries


def _day_ms(d: date) -> int:
    return to_ms(datetime(d.year, d.month, d.day, tzinfo=UTC))


def resolve_window(start: date | None, end: date | None, default: tuple[date, date]) -> tuple[date, date]:
    """The documented rules: start alone -> one month on; end alone -> one month back; both -> capped at a month, start leading."""
    if start is not None and end is not None:
        return start, min(end, add_months(start, 1))
    if start is not None:
        return start, add_months(start, 1)
    if end is not None:
        return add_months(end, -1), end
    return default


def default_window(data: SMTPeterData, now: int, kind: str, value: str) -> tuple[date, date]:
    """messageid: from the day it was sent, one month on; others: the last monthly period up to and including today."""
    if kind == "messageid" and value in data.by_id:
        sent = from_ms(data.messages[data.by_id[value]].sent).date()
        return sent, add_months(sent, 1)
    today = from_ms(now).date()
    return add_months(today, -1), today + timedelta(days=1)


def query_events(
    data: SMTPeterData,
    now: int,
    kind: str,
    value: str,
    window: tuple[date, date],
    tags: list[str] | None = None,
) -> list[int]:
    """Positions of the events matching the selector, in the window and not after ``now``, in time order."""
    required = set(tags or ())
    if kind == "tags":
        wanted = [t for t in value.split(";") if t]
        if not wanted:
            return []
        required.update(wanted)
        positions = data.index("tags").get(wanted[0], [])
    elif kind == "email":
        positions = data.index("email").get(value.lower(), [])
    else:
        positions = data.index(kind).get(value, [])
    lo_ms, hi_ms = _day_ms(window[0]), _day_ms(window[1])
    # Positions ascend with time, so the window is a contiguous slice.
    keyed = _TimesView(data.times, positions)
    lo = bisect_left(keyed, lo_ms)
    hi = min(bisect_left(keyed, hi_ms), bisect_right(keyed, now))
    out = positions[lo:hi]
    if required:
        out = [p for p in out if required <= data.messages[data.events[p][1]].tagset]
    return out


class _TimesView:
    """``data.times`` seen through a list of positions, for bisect without copying."""

    __slots__ = ("_times", "_positions")

    def __init__(self, times: list[int], positions: list[int]) -> None:
        self._times, self._positions = times, positions

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, i: int) -> int:
        return self._times[self._positions[i]]


def snapshot(
    data: SMTPeterData,
    now: int,
    bad_rate: float,
    tags: list[str] | str | None = None,
    template: int | str | None = None,
    start: date | str | None = None,
    end: date | str | None = None,
) -> list[dict[str, Any]]:
    """All events up to now (time order); optionally only a selector's (tags: all of them; template) and a day window."""
    hi = bisect_right(data.times, now)
    lo = 0
    if start is not None:
        lo = bisect_left(data.times, _day_ms(_as_date(start)))
    if end is not None:
        hi = min(hi, bisect_left(data.times, _day_ms(_as_date(end))))
    wanted = set(tags.split(";") if isinstance(tags, str) else tags) if tags else None
    out = []
    for ev in data.events[lo:hi]:
        m = data.messages[ev[1]]
        if wanted is not None and not wanted <= m.tagset:
            continue
        if template is not None and str(m.template) != str(template):
            continue
        out.append(render_event(data, ev, bad_rate))
    return out


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def bad_records(data: SMTPeterData, now: int, bad_rate: float) -> list[dict[str, Any]]:
    hi = bisect_right(data.times, now)
    out = []
    for ev in data.events[:hi]:
        kind = bad_kind(ev[4], bad_rate)
        if kind:
            out.append(
                {
                    "kind": "events",
                    "id": data.messages[ev[1]].id,
                    "reason": kind,
                    "payload": render_event(data, ev, bad_rate),
                }
            )
    return out


# ---------------------------------------------------------------------------
# HTTP


def check_auth(request: web.Request, key: str, revoked: bool) -> web.Response | None:
    token = request.query.get("access_token")
    if not token:
        return json_response({"error": "no access_token given"}, status=401)
    if revoked:
        return json_response({"error": "access token revoked"}, status=401)
    if token != key:
        return json_response({"error": "invalid access token"}, status=403)
    return None


def _date_param(query: Any, name: str) -> date | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{name}: expected a date as yyyy-mm-dd, got {raw!r}") from None


async def list_events(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    kind, value = request.match_info["kind"], request.match_info["value"]
    if kind not in SELECTORS:
        return json_response({"error": f"unknown selector {kind!r}; use one of {', '.join(SELECTORS)}"}, status=404)
    try:
        start, end = _date_param(request.query, "start"), _date_param(request.query, "end")
    except ValueError as exc:
        return json_response({"error": str(exc)}, status=400)
    if start is not None and end is not None and end < start:
        return json_response({"error": "end must not be before start"}, status=400)
    data, now = sim.data("smtpeter"), sim.now_ms
    window = resolve_window(start, end, default_window(data, now, kind, value))
    tags = [t for t in request.query.get("tags", "").split(";") if t]
    positions = query_events(data, now, kind, value, window, tags)
    rate = sim.faults["smtpeter"].bad_record_rate
    return json_response([render_event(data, data.events[p], rate) for p in positions])


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/events/{kind}/{value:.+}", list_events)
