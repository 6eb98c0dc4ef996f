"""SmarterSends simulator: campaign export, conversations usage, calendar events (API facts: docs/providers/smartersends.md).

The campaign export is answered at once with file metadata and a temporary
URL on this server (``/_files/exports/...``) that serves the generated file
until it expires (60 simulated minutes by default). The doc shows the export as
``POST /api/usage/campaign/export`` and as ``GET /api/usage/campaigns/export``:
``sim.settings.smartersends_export_method`` says which answers; the other
answers 405 so a client's fallback can be tested.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from mailpulse.simulators._util import (
    DAY,
    HOUR,
    MINUTE,
    BadInput,
    from_ms,
    iso_s,
    iso_us,
    json_response,
    lognormal_ms,
    parse_loose,
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
    "ALLOWED_COLUMNS",
    "DEFAULT_COLUMNS",
    "CAMPAIGN_STATUSES",
    "EXPORT_POST_PATH",
    "EXPORT_GET_PATH",
    "SmarterSendsData",
    "generate",
    "normalise_columns",
    "normalise_statuses",
    "export_rows",
    "conversations_report",
    "calendar",
    "snapshot",
    "bad_records",
    "add_routes",
    "check_auth",
]

ALLOWED_COLUMNS = (
    "name", "subject", "send_time", "type", "html", "from_name", "from_address", "reply_to_address",
    "status", "sent_mailing_id", "template_name", "group_name", "user_name",
)  # fmt: skip
DEFAULT_COLUMNS = ("name", "subject", "send_time", "type", "html")
CAMPAIGN_STATUSES = ("Draft", "Sent", "Canceled", "Failed", "Pending", "Scheduled", "Reviewed")
DATE_COLUMNS = ("created_at", "updated_at", "send_time")
EXPORT_POST_PATH = "/api/usage/campaign/export"
EXPORT_GET_PATH = "/api/usage/campaigns/export"
NO_URL_MESSAGE = "Export generated, but no temporary URL could be created."
TENANT = "4242"

_GROUPS = ((5, "Marketing"), (7, "Sales"), (12, "Support"), (14, "Events"), (21, "Partners"))
_USERS = ("Dana Fox", "Ivo Peters", "Noor Haddad", "Kim Berg")
_TEMPLATES = ("Monthly newsletter", "Product launch", "Event invite", "Plain text", None)
_NAMES = (
    "Winter promo",
    "Product update",
    "Webinar invite",
    "Customer survey",
    "Holiday hours",
    "Feature spotlight",
    "Renewal reminder",
)


@dataclass(slots=True)
class Campaign:
    id: int
    name: str
    subject: str
    type: str
    from_name: str
    from_address: str
    reply_to: str
    template: str | None
    group: int
    user: str
    created: int
    send_time: int | None
    #: (at, status) in time order.
    statuses: tuple[tuple[int, str], ...]
    sent_mailing_id: int | None
    ubad: float


@dataclass(slots=True)
class Conversation:
    created: int
    group: int
    inbound: tuple[int, ...]
    outbound: tuple[int, ...]
    reads: tuple[int, ...]
    reminders: tuple[int, ...]
    escalations: tuple[int, ...]
    closed: int | None


@dataclass(slots=True)
class CalendarEvent:
    id: int
    created: int
    deleted: int | None
    #: (at, fields) in time order; the first is the event as created.
    versions: tuple[tuple[int, dict[str, Any]], ...]
    ubad: float


@dataclass
class SmarterSendsData:
    campaigns: list[Campaign]
    conversations: list[Conversation]
    events: list[CalendarEvent]


# ---------------------------------------------------------------------------
# Generation


def generate(config: SimulatorConfig) -> SmarterSendsData:
    rng = random.Random(f"{config.seed}/smartersends")
    bad_rng = random.Random(f"{config.seed}/smartersends/bad")
    t0 = to_ms(config.start)
    clock = t0 + td_ms(config.history)
    end = clock + td_ms(config.horizon)

    def created_after(lo: int) -> int:
        if end > clock and rng.random() < config.future_fraction:
            return ri(rng, clock + 1, end)
        return ri(rng, lo, clock)

    campaigns: list[Campaign] = []
    for i in range(max(12, config.size // 40)):
        created = created_after(t0 - 20 * DAY) // 1000 * 1000
        kind = "sms" if rng.random() < 0.12 else "email"
        statuses: list[tuple[int, str]] = []
        send_time: int | None = None
        r = rng.random()
        if r < 0.1:
            statuses.append((created, "Draft"))
        else:
            if r < 0.2:
                statuses.append((created, "Pending"))
                reviewed = created + ri(rng, HOUR, DAY)
                statuses.append((reviewed, "Reviewed"))
                scheduled = reviewed + ri(rng, MINUTE, 6 * HOUR)
            else:
                statuses.append((created, "Draft"))
                scheduled = created + ri(rng, 10 * MINUTE, 2 * DAY)
            statuses.append((scheduled, "Scheduled"))
            send_time = (scheduled + ri(rng, HOUR, 5 * DAY)) // MINUTE * MINUTE
            outcome = rng.random()
            if outcome < 0.04:
                statuses.append((ri(rng, scheduled, send_time), "Canceled"))
            elif outcome < 0.08:
                statuses.append((send_time + ri(rng, 1000, 10 * MINUTE), "Failed"))
            else:
                statuses.append((send_time, "Sent"))
        name = f"{pick(rng, _NAMES)} #{i + 1}"
        group = int(rng.random() * len(_GROUPS))
        campaigns.append(
            Campaign(
                id=i + 1,
                name=name,
                subject=f"{name.split(' #')[0]}: news from Acme" if kind == "email" else "",
                type=kind,
                from_name="Acme",
                from_address="news@acme.example",
                reply_to="support@acme.example",
                template=pick(rng, _TEMPLATES) if kind == "email" else None,
                group=group,
                user=pick(rng, _USERS),
                created=created,
                send_time=send_time,
                statuses=tuple(statuses),
                sent_mailing_id=70000 + i * 7 + int(rng.random() * 7) if statuses[-1][1] == "Sent" else None,
                ubad=bad_rng.random(),
            )
        )

    conversations: list[Conversation] = []
    for _ in range(max(30, config.size // 20)):
        created = created_after(t0 - 40 * DAY)
        inbound, outbound, reads = [created], [], []
        at = created
        for _turn in range(ri(rng, 1, 4)):
            if rng.random() < 0.2:
                break  # never answered (yet)
            read = at + ri(rng, MINUTE, 2 * HOUR)
            reads.append(read)
            at = read + lognormal_ms(rng, 45 * MINUTE, 1.2, 3 * DAY)
            outbound.append(at)
            if rng.random() < 0.5:
                break
            at += lognormal_ms(rng, 3 * HOUR, 1.2, 4 * DAY)
            inbound.append(at)
        reminders = tuple(sorted(ri(rng, created, created + 3 * DAY) for _ in range(pick(rng, (0, 0, 0, 1, 2)))))
        escalations = (created + ri(rng, HOUR, 2 * DAY),) if rng.random() < 0.08 else ()
        closed = max(inbound + outbound) + ri(rng, HOUR, 4 * DAY) if rng.random() < 0.5 else None
        conversations.append(
            Conversation(
                created,
                int(rng.random() * len(_GROUPS)),
                tuple(inbound),
                tuple(outbound),
                tuple(reads),
                reminders,
                escalations,
                closed,
            )
        )

    events: list[CalendarEvent] = []
    sends = [c for c in campaigns if c.send_time is not None][: max(6, config.size // 100)]
    specs: list[tuple[int, dict[str, Any]]] = []
    for c in sends:
        specs.append(
            (
                c.statuses[0][0],
                _one_time(
                    f"Send: {c.name}", c.send_time or 0, 30 * MINUTE, [c.group], f"Scheduled send of campaign {c.id}"
                ),
            )
        )
    for k in range(max(6, config.size // 200)):
        created = created_after(t0 - 30 * DAY) // 1000 * 1000
        starts = (created + ri(rng, DAY, 10 * DAY)) // HOUR * HOUR
        if k % 2:
            fields = _one_time(
                pick(rng, ("Team Sync", "Quarterly review", "Content planning")),
                starts,
                HOUR,
                [int(rng.random() * len(_GROUPS))],
                "Planning meeting",
            )
        else:
            fields = _one_time("Weekly Training", starts, HOUR, [], "Recurring training")
            fields.update(
                repeats=True,
                repeat_type="weekly",
                repeat_interval=1,
                repeat_days=["MO"],
                max_occurrences=pick(rng, (None, 8)),
                all_groups=True,
            )
        specs.append((created, fields))
    for i, (created, fields) in enumerate(specs):
        versions = [(created, fields)]
        if rng.random() < 0.4:
            moved_at = ri(rng, created, created + 12 * DAY)
            shift = pick(rng, (-1, 1, 2)) * DAY
            moved = dict(fields)
            moved["start_date"] = fields["start_date"] + shift
            moved["end_date"] = fields["end_date"] + shift if fields["end_date"] is not None else None
            versions.append((moved_at, moved))
        deleted = ri(rng, created, created + 6 * DAY) if rng.random() < 0.1 else None
        events.append(CalendarEvent(i + 1, created, deleted, tuple(versions), bad_rng.random()))
    return SmarterSendsData(campaigns=campaigns, conversations=conversations, events=events)


def _one_time(name: str, start: int, length: int, groups: list[int], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "start_date": start,
        "end_date": start + length,
        "description": description,
        "repeats": False,
        "repeat_type": None,
        "max_occurrences": None,
        "repeat_interval": None,
        "repeat_days": None,
        "repeat_months": None,
        "all_groups": not groups,
        "groups": groups,
    }


# ---------------------------------------------------------------------------
# Campaigns


def campaign_state(c: Campaign, now: int) -> tuple[str, int]:
    status, updated = c.statuses[0][1], c.created
    for at, st in c.statuses:
        if at > now:
            break
        status, updated = st, at
    return status, updated


def render_campaign(c: Campaign, now: int, bad_rate: float = 0.0) -> dict[str, Any]:
    """Every allowed column, in the doc's order."""
    status, _ = campaign_state(c, now)
    row: dict[str, Any] = {
        "name": c.name,
        "subject": c.subject,
        "send_time": sql_s(c.send_time) if c.send_time is not None else None,
        "type": c.type,
        "html": f"<html><body><h1>{c.name}</h1></body></html>" if c.type == "email" else None,
        "from_name": c.from_name,
        "from_address": c.from_address,
        "reply_to_address": c.reply_to,
        "status": status,
        "sent_mailing_id": c.sent_mailing_id if status == "Sent" else None,
        "template_name": c.template,
        "group_name": _GROUPS[c.group][1],
        "user_name": c.user,
    }
    kind = bad_kind(c.ubad, bad_rate)
    if kind == "missing id":
        del row["sent_mailing_id"]
    elif kind == "unparsable timestamp":
        row["send_time"] = "32/13/2026 25:61"
    elif kind == "unknown status":
        row["status"] = "Exploded"
    return row


def normalise_columns(raw: str | list[str] | None) -> list[str]:
    """Split by commas, trim, lowercase, spaces -> underscores; keep allowed ones once, in order; else the defaults."""
    parts = raw if isinstance(raw, list) else (raw or "").split(",")
    out: list[str] = []
    for part in parts:
        name = str(part).strip().lower().replace(" ", "_")
        if name in ALLOWED_COLUMNS and name not in out:
            out.append(name)
    return out or list(DEFAULT_COLUMNS)


def normalise_statuses(raw: str | list[str] | None) -> list[str]:
    """Trim, case-normalise, keep valid ones once. An empty result means no status filter."""
    parts = raw if isinstance(raw, list) else (raw or "").split(",")
    by_lower = {s.lower(): s for s in CAMPAIGN_STATUSES}
    out: list[str] = []
    for part in parts:
        status = by_lower.get(str(part).strip().lower())
        if status and status not in out:
            out.append(status)
    return out


def export_rows(
    data: SmarterSendsData,
    now: int,
    *,
    start_ms: int,
    end_ms: int,
    date_column: str = "send_time",
    type: str | None = None,
    statuses: list[str] | None = None,
    columns: list[str] | None = None,
    bad_rate: float = 0.0,
) -> list[dict[str, Any]]:
    """Campaigns whose ``date_column`` is within [start, end] (inclusive), ordered by it then id, projected on ``columns``."""
    cols = columns or list(DEFAULT_COLUMNS)
    picked: list[tuple[int, int, Campaign]] = []
    for c in data.campaigns:
        if c.created > now:
            continue
        status, updated = campaign_state(c, now)
        when = {"send_time": c.send_time, "created_at": c.created, "updated_at": updated}[date_column]
        if when is None or not start_ms <= when <= end_ms:
            continue
        if type is not None and c.type != type:
            continue
        if statuses and status not in statuses:
            continue
        picked.append((when, c.id, c))
    picked.sort(key=lambda t: (t[0], t[1]))
    out = []
    for _, _, c in picked:
        full = render_campaign(c, now, bad_rate)
        out.append({k: full[k] for k in cols if k in full})
    return out


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(k) is None else row.get(k) for k in columns])
    return buf.getvalue().encode()


# ---------------------------------------------------------------------------
# Conversations


def _count(times: tuple[int, ...], now: int) -> int:
    return sum(1 for t in times if t <= now)


def _conversation_facts(c: Conversation, now: int) -> dict[str, Any]:
    n_in, n_out = _count(c.inbound, now), _count(c.outbound, now)
    last_in = max(t for t in c.inbound if t <= now)
    last_out = max((t for t in c.outbound if t <= now), default=None)
    last_read = max((t for t in c.reads if t <= now), default=None)
    active = c.closed is None or c.closed > now
    awaiting = active and (last_out is None or last_in > last_out)
    first_out = c.outbound[0] if c.outbound and c.outbound[0] <= now else None
    return {
        "in": n_in,
        "out": n_out,
        "active": active,
        "awaiting": awaiting,
        "unread": active and (last_read is None or last_in > last_read),
        "at_risk": awaiting and now - last_in > 4 * HOUR,
        "stale": active and now - max(last_in, last_out or 0) > 3 * DAY,
        "reminders": _count(c.reminders, now),
        "escalations": _count(c.escalations, now),
        "first_response": (first_out - c.created) / MINUTE if first_out is not None else None,
    }


def _rollup(facts: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(facts)
    firsts = [f["first_response"] for f in facts if f["first_response"] is not None]
    total_in = sum(f["in"] for f in facts)
    total_out = sum(f["out"] for f in facts)
    return {
        "total_conversations": n,
        "active_conversations": sum(f["active"] for f in facts),
        "awaiting_reply": sum(f["awaiting"] for f in facts),
        "unread_conversations": sum(f["unread"] for f in facts),
        "at_risk": sum(f["at_risk"] for f in facts),
        "stale": sum(f["stale"] for f in facts),
        "reminders": sum(f["reminders"] for f in facts),
        "escalations": sum(f["escalations"] for f in facts),
        "avg_first_response_minutes": round(sum(firsts) / len(firsts), 2) if firsts else None,
        "avg_messages_per_conversation": round((total_in + total_out) / n, 2) if n else 0,
        "avg_sent_messages_per_conversation": round(total_out / n, 2) if n else 0,
        "avg_received_messages_per_conversation": round(total_in / n, 2) if n else 0,
    }


def conversations_report(data: SmarterSendsData, now: int, start_ms: int, end_ms: int) -> dict[str, Any]:
    """The JSON report: conversations created within [start, end] (inclusive) and by now."""
    chosen = [c for c in data.conversations if start_ms <= c.created <= end_ms and c.created <= now]
    facts = [_conversation_facts(c, now) for c in chosen]
    by_group = []
    for gi, (gid, gname) in enumerate(_GROUPS):
        group_facts = [f for f, c in zip(facts, chosen, strict=True) if c.group == gi]
        if not group_facts:
            continue
        full = _rollup(group_facts)
        row = {"group_id": gid, "group_name": gname}
        row.update(
            {
                k: v
                for k, v in full.items()
                if k not in ("avg_sent_messages_per_conversation", "avg_received_messages_per_conversation")
            }
        )
        by_group.append(row)
    return {
        "range": {"start": iso_s(start_ms), "end": iso_s(end_ms)},
        "metrics": _rollup(facts),
        "by_group": by_group,
    }


def default_conversation_range(now: int) -> tuple[int, int]:
    """ "start_date defaults to 30 days ago, end_date to today" (whole days)."""
    today = now // DAY * DAY
    return today - 30 * DAY, today + DAY - 1


def _report_csv(report: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["metric", "value"])
    for key, value in report["metrics"].items():
        writer.writerow([key, "" if value is None else value])
    writer.writerow([])
    if report["by_group"]:
        columns = list(report["by_group"][0])
        writer.writerow(columns)
        for row in report["by_group"]:
            writer.writerow(["" if row[k] is None else row[k] for k in columns])
    return buf.getvalue().encode()


# ---------------------------------------------------------------------------
# Calendar


def render_event(e: CalendarEvent, now: int, bad_rate: float = 0.0) -> dict[str, Any]:
    fields, updated = e.versions[0][1], e.created
    for at, version in e.versions:
        if at > now:
            break
        fields, updated = version, at
    out: dict[str, Any] = {"id": e.id, "name": fields["name"]}
    out["start_date"] = iso_us(fields["start_date"])
    out["end_date"] = iso_us(fields["end_date"]) if fields["end_date"] is not None else None
    for key in (
        "description",
        "repeats",
        "repeat_type",
        "max_occurrences",
        "repeat_interval",
        "repeat_days",
        "repeat_months",
        "all_groups",
    ):
        out[key] = fields[key]
    out["created_at"] = iso_us(e.created)
    out["updated_at"] = iso_us(updated)
    out["groups"] = [{"id": _GROUPS[g][0], "name": _GROUPS[g][1]} for g in fields["groups"]]
    kind = bad_kind(e.ubad, bad_rate)
    if kind == "missing id":
        del out["id"]
    elif kind == "unparsable timestamp":
        out["start_date"] = "next Monday-ish"
    elif kind == "unknown status":
        out["repeat_type"] = "fortnightly-ish"
        out["repeats"] = True
    return out


def _visible(e: CalendarEvent, now: int) -> bool:
    return e.created <= now and (e.deleted is None or e.deleted > now)


def calendar(data: SmarterSendsData, now: int, bad_rate: float = 0.0) -> list[dict[str, Any]]:
    return [render_event(e, now, bad_rate) for e in data.events if _visible(e, now)]


# ---------------------------------------------------------------------------
# Snapshot, bad records


def snapshot(data: SmarterSendsData, now: int, bad_rate: float, kind: str = "campaigns", **kw: Any) -> Any:
    """``campaigns``: every visible campaign, all columns, by id; ``conversations``: the JSON report
    (``start_date``/``end_date`` as the API takes them, default the API's range); ``calendar``: GET /api/events."""
    if kind == "campaigns":
        return [render_campaign(c, now, bad_rate) for c in data.campaigns if c.created <= now]
    if kind == "conversations":
        lo, hi = default_conversation_range(now)
        if kw.get("start_date"):
            lo = parse_loose(str(kw["start_date"]), "start date")
        if kw.get("end_date"):
            hi = parse_loose(str(kw["end_date"]), "end date", end_of_day=True)
        return conversations_report(data, now, lo, hi)
    if kind == "calendar":
        return calendar(data, now, bad_rate)
    raise ValueError(f"smartersends snapshot kind {kind!r}: expected 'campaigns', 'conversations' or 'calendar'")


def bad_records(data: SmarterSendsData, now: int, bad_rate: float) -> list[dict[str, Any]]:
    out = []
    for c in data.campaigns:
        kind = bad_kind(c.ubad, bad_rate)
        if kind and c.created <= now:
            out.append({"kind": "campaigns", "id": c.id, "reason": kind, "payload": render_campaign(c, now, bad_rate)})
    for e in data.events:
        kind = bad_kind(e.ubad, bad_rate)
        if kind and _visible(e, now):
            out.append({"kind": "calendar", "id": e.id, "reason": kind, "payload": render_event(e, now, bad_rate)})
    return out


# ---------------------------------------------------------------------------
# HTTP


def check_auth(request: web.Request, key: str, revoked: bool) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or header[7:] != key or revoked:
        return json_response({"message": "Unauthenticated."}, status=401)
    return None


def _invalid(errors: dict[str, list[str]]) -> web.Response:
    """Laravel's 422 body."""
    messages = [m for ms in errors.values() for m in ms]
    more = len(messages) - 1
    summary = messages[0] + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")
    return json_response({"message": summary, "errors": errors}, status=422)


def _file_reply(request: web.Request, kind: str, ext: str, body: bytes, no_url: bool) -> web.Response:
    """Store the generated file and answer with its metadata and temporary URL."""
    sim = request.app["sim"]
    now = sim.now_ms
    sim.export_count += 1
    serial = sim.export_count
    token = hashlib.blake2b(f"{sim.config.seed}/{kind}/{serial}".encode(), digest_size=16).hexdigest()
    content_type = "application/json" if ext == "json" else "text/csv"
    expires = now + int(sim.settings.smartersends_url_ttl.total_seconds() * 1000)
    # Forget files expired more than a day ago: a long `mailpulse simulate` run keeps exporting.
    for old in [t for t, (exp, _, _) in sim.exports.items() if exp < now - DAY]:
        del sim.exports[old]
    sim.exports[token] = (expires, content_type, body)
    stamp = from_ms(now).strftime("%Y%m%d_%H%M%S")
    file: dict[str, Any] = {
        "extension": ext,
        "content_type": content_type,
        "s3_path": f"/tmp/exports/{TENANT}/{kind}_{stamp}_{token[:8]}-{token[8:12]}-{token[12:16]}-{token[16:20]}-{token[20:32]}.{ext}",
        "url": f"{request.url.origin()}/_files/exports/{token}.{ext}?expires={expires // 1000}&signature={_signature(token, expires)}",
        "expires_at": iso_s(expires),
    }
    if no_url:
        del file["url"]
        return json_response({"file": file, "message": NO_URL_MESSAGE})
    return json_response({"file": file})


def _signature(token: str, expires: int) -> str:
    return hashlib.blake2b(f"{token}/{expires}".encode(), digest_size=10).hexdigest()


async def export_campaigns(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    method, path = request.method, request.path
    setting = sim.settings.smartersends_export_method
    documented = (path == EXPORT_POST_PATH and method == "POST") or (path == EXPORT_GET_PATH and method == "GET")
    if not documented or setting not in ("both", method):
        supported = "POST" if method == "GET" else "GET, HEAD"
        return json_response(
            {
                "message": f"The {method} method is not supported for route {path.lstrip('/')}. Supported methods: {supported}."
            },
            status=405,
            headers={"Allow": supported},
        )
    params: dict[str, Any] = dict(request.query)
    if method == "POST" and request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            return _invalid({"body": ["The request body must be valid JSON."]})
        if isinstance(body, dict):
            params.update(body)
    errors: dict[str, list[str]] = {}
    window = []
    for name, label, end_of_day in (("start_date", "start date", False), ("end_date", "end date", True)):
        raw = params.get(name)
        if raw in (None, ""):
            errors[name] = [f"The {label} field is required."]
            continue
        try:
            window.append(parse_loose(str(raw), label, end_of_day=end_of_day))
        except BadInput as exc:
            errors[name] = [str(exc)]
    fmt = str(params.get("format") or "csv").lower()
    if fmt not in ("csv", "json"):
        errors["format"] = ["The selected format is invalid."]
    date_column = str(params.get("date_column") or "send_time").lower()
    if date_column not in DATE_COLUMNS:
        errors["date_column"] = ["The selected date column is invalid."]
    if errors:
        return _invalid(errors)
    columns = normalise_columns(params.get("columns"))
    rows = export_rows(
        sim.data("smartersends"),
        sim.now_ms,
        start_ms=window[0],
        end_ms=window[1],
        date_column=date_column,
        type=str(params["type"]) if params.get("type") else None,
        statuses=normalise_statuses(params.get("status")),
        columns=columns,
        bad_rate=sim.faults["smartersends"].bad_record_rate,
    )
    content = orjson.dumps(rows) if fmt == "json" else _csv(rows, columns)
    return _file_reply(request, "campaigns", fmt, content, sim.faults.take_no_url("smartersends"))


async def usage_conversations(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    now = sim.now_ms
    lo, hi = default_conversation_range(now)
    errors: dict[str, list[str]] = {}
    q = request.query
    try:
        if q.get("start_date"):
            lo = parse_loose(q["start_date"], "start date")
    except BadInput as exc:
        errors["start_date"] = [str(exc)]
    try:
        if q.get("end_date"):
            hi = parse_loose(q["end_date"], "end date", end_of_day=True)
    except BadInput as exc:
        errors["end_date"] = [str(exc)]
    fmt = (q.get("format") or "json").lower()
    if fmt not in ("json", "csv"):
        errors["format"] = ["The selected format is invalid."]
    if errors:
        return _invalid(errors)
    report = conversations_report(sim.data("smartersends"), now, lo, hi)
    if fmt == "json":
        return json_response(report)
    return _file_reply(request, "conversations_usage", "csv", _report_csv(report), False)


async def list_calendar(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    return json_response(calendar(sim.data("smartersends"), sim.now_ms, sim.faults["smartersends"].bad_record_rate))


async def get_calendar_event(request: web.Request) -> web.Response:
    sim = request.app["sim"]
    now = sim.now_ms
    try:
        wanted = int(request.match_info["id"])
    except ValueError:
        wanted = -1
    for e in sim.data("smartersends").events:
        if e.id == wanted and _visible(e, now):
            return json_response(render_event(e, now, sim.faults["smartersends"].bad_record_rate))
    return json_response({"message": "Event not found."}, status=404)


_EXPIRED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Request has expired</Message></Error>"
)


async def download(request: web.Request) -> web.Response:
    """The temporary signed URL (no bearer key: the signature is the credential)."""
    sim = request.app["sim"]
    token, _, _ext = request.match_info["name"].partition(".")
    stored = sim.exports.get(token)
    if stored is None:
        return web.Response(
            text='<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code></Error>',
            status=404,
            content_type="application/xml",
        )
    expires, content_type, body = stored
    if request.query.get("signature") != _signature(token, expires) or request.query.get("expires") != str(
        expires // 1000
    ):
        return web.Response(
            text='<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code></Error>',
            status=403,
            content_type="application/xml",
        )
    if sim.now_ms > expires:
        return web.Response(text=_EXPIRED, status=403, content_type="application/xml")
    return web.Response(body=body, content_type=content_type)


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", EXPORT_POST_PATH, export_campaigns)
    app.router.add_route("*", EXPORT_GET_PATH, export_campaigns)
    app.router.add_get("/api/usage/conversations", usage_conversations)
    app.router.add_get("/api/events", list_calendar)
    app.router.add_get("/api/events/{id}", get_calendar_event)
    app.router.add_get("/_files/exports/{name}", download)
