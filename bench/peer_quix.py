"""The benchmark's peer: Quix Streams doing the same aggregation as the mailpulse worker.

Runs in its own virtualenv (``bench/.venv-peer``, created by streams_bench.py;
never a project dependency). Per-message state (distinct event ids + facts) in
RocksDB with changelogs; when a message's flags change, the flag delta goes to
``group_by`` campaign and ``group_by`` contact, each summing into its own
state. Exact under duplicates (dedupe by event id), at-least-once.

Prints one JSON line: events, seconds (first event -> everything aggregated),
events_per_s, peak_rss_mb, and the campaign totals (checked by the bench).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time

from quixstreams import Application

FLAGS = (
    "sent",
    "delivered",
    "bounced",
    "hard_bounced",
    "soft_bounced",
    "opened",
    "clicked",
    "complained",
    "unsubscribed",
    "replied",
    "failed",
    "deferred",
    "suppressed",
    "opens_total",
    "clicks_total",
)
SENT = {"sent", "delivered", "deferred", "opened", "clicked", "bounced", "complained", "unsubscribed", "replied"}
DELIVERY = {"delivered", "opened", "clicked", "complained", "unsubscribed", "replied"}


def flags(st: dict) -> list[int]:
    types = set(st["t"])
    kinds = set(st["k"])
    sent = bool(types & SENT)
    bounced = "bounced" in types
    delivered = (sent if st["nd"] else bool(types & DELIVERY)) and not bounced
    out = [
        sent,
        delivered,
        bounced,
        "hard" in kinds,
        "soft" in kinds and "hard" not in kinds,
        "opened" in types or "clicked" in types,
    ]
    out += [
        t in types for t in ("clicked", "complained", "unsubscribed", "replied", "failed", "deferred", "suppressed")
    ]
    return [int(x) for x in out] + [max(st["o"], st["oc"]), st["c"]]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--expected-sent", type=int, required=True)
    args = ap.parse_args()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        processing_guarantee="at-least-once",
        commit_interval=1.0,
        loglevel="WARNING",
        consumer_extra_config={"isolation.level": "read_committed"},
    )
    topic = app.topic(args.topic, key_deserializer="str", value_deserializer="json")
    sdf = app.dataframe(topic)
    progress = {"events": 0, "to_campaign": 0, "to_contact": 0, "campaign": 0, "contact": 0, "sent": 0, "t0": None}

    def per_message(value: dict, state) -> dict | None:
        if progress["t0"] is None:
            progress["t0"] = time.perf_counter()
        progress["events"] += 1
        st = state.get("m")
        eid = value["event_id"][:16]
        if st is not None and eid in st["ids"]:
            return None  # a duplicate adds nothing: dropped before regrouping
        if st is None:
            st = {"ids": [], "t": [], "k": [], "nd": False, "o": 0, "oc": 0, "c": 0, "camp": None, "cont": None}
        old = flags(st) if st["ids"] else [0] * len(FLAGS)
        st["ids"].append(eid)
        t = value["type"]
        if t not in st["t"]:
            st["t"].append(t)
        b = value.get("bounce")
        if t == "bounced" and b and b.get("kind") in ("hard", "soft") and b["kind"] not in st["k"]:
            st["k"].append(b["kind"])
        attrs = value.get("attributes") or {}
        if attrs.get("reports_delivery") is False:
            st["nd"] = True
        if t == "opened":
            st["o"] += 1
            st["oc"] = max(st["oc"], attrs.get("opens_counter") or 0)
        elif t == "clicked":
            st["c"] += 1
        src = value["source"]
        if value.get("campaign_id"):
            st["camp"] = (
                f"{src}:{value['campaign_id']}"
                if st["camp"] is None
                else min(st["camp"], f"{src}:{value['campaign_id']}")
            )
        contact = value.get("contact_id") or value.get("email")
        if contact:
            st["cont"] = f"{src}:{contact}" if st["cont"] is None else min(st["cont"], f"{src}:{contact}")
        state.set("m", st)
        new = flags(st)
        delta = [n - o for n, o in zip(new, old, strict=True)]
        if not any(delta):
            return None  # no flag changed: nothing to regroup
        return {"camp": st["camp"], "cont": st["cont"], "d": delta}

    changes = sdf.apply(per_message, stateful=True).filter(lambda v: v is not None)

    def count(name: str):
        def f(v: dict) -> dict:
            progress[name] += 1
            return v

        return f

    def add(v: dict, state) -> None:
        acc = state.get("a") or [0] * len(FLAGS)
        state.set("a", [a + d for a, d in zip(acc, v["d"], strict=True)])

    camp = changes.filter(lambda v: v["camp"] is not None).update(count("to_campaign"))
    camp = camp.group_by(lambda v: v["camp"], name="campaign")

    def add_campaign(v: dict, state) -> None:
        progress["campaign"] += 1
        progress["sent"] += v["d"][0]
        add(v, state)

    camp.update(add_campaign, stateful=True)
    cont = changes.filter(lambda v: v["cont"] is not None).update(count("to_contact"))
    cont = cont.group_by(lambda v: v["cont"], name="contact")

    def add_contact(v: dict, state) -> None:
        progress["contact"] += 1
        add(v, state)

    cont.update(add_contact, stateful=True)

    done = {"t": None}

    def finished() -> bool:
        p = progress
        ok = (
            p["events"] >= args.events
            and p["campaign"] >= p["to_campaign"]
            and p["contact"] >= p["to_contact"]
            and p["sent"] >= args.expected_sent
        )
        if ok and done["t"] is None:
            done["t"] = time.perf_counter()
        return ok

    def watchdog() -> None:
        while not finished():
            time.sleep(0.05)
        app.stop()

    threading.Thread(target=watchdog, daemon=True).start()
    app.run()
    seconds = (done["t"] or time.perf_counter()) - (progress["t0"] or time.perf_counter())
    print(
        json.dumps(
            {
                "events": progress["events"],
                "seconds": round(seconds, 3),
                "events_per_s": round(args.events / seconds) if seconds > 0 else None,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "campaign_sent": progress["sent"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
