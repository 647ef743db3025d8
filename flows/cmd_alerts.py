"""`gliowatch alerts`: deliver the outbox, run a local webhook sink, list and acknowledge alerts.

- ``alerts deliver [--once]``: escalate overdue alerts and deliver due outbox rows (with backoff),
  once or in a loop. It opens the store for writing, so it runs when no watcher holds the store;
  the watch flow calls :func:`engine.alerts.outbox.run_outbox_once` itself after each cycle.
- ``alerts sink --port N``: a webhook receiver on 127.0.0.1 for the demo: it verifies the HMAC
  signature, drops repeated delivery keys, prints each alert and appends it to a JSON-lines file.
- ``alerts list`` / ``alerts ack ALERT_ID --user NAME [--note TEXT]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from engine.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("alerts", help="deliver alerts, run a local webhook sink, list/acknowledge")
    sub = p.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    d = sub.add_parser("deliver", help="deliver due alerts from the outbox (with retries and escalation)")
    d.add_argument("--once", action="store_true", help="one pass, then exit")
    d.add_argument("--interval-s", type=float, default=10.0, help="seconds between passes (default 10)")
    s = sub.add_parser("sink", help="run a local webhook receiver on 127.0.0.1 (demo)")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--out", type=Path, help="JSON-lines file (default: <state_dir>/alert-sink/received.jsonl)")
    s.add_argument("--max-alerts", type=int, default=0, help="exit after this many alerts (0: run until Ctrl-C)")
    ls = sub.add_parser("list", help="list alerts, newest first")
    ls.add_argument("--patient", help="pseudonymous patient key")
    ls.add_argument("--open", action="store_true", help="only unacknowledged alerts")
    a = sub.add_parser("ack", help="acknowledge an alert (stops its escalation)")
    a.add_argument("alert_id", type=int)
    a.add_argument("--user", required=True)
    a.add_argument("--note", default="")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    action = args.alerts_command
    if action == "deliver":
        return _deliver(args, settings)
    if action == "sink":
        return _sink(args, settings)
    if action == "list":
        return _list(args, settings)
    return _ack(args, settings)


def _secrets_dir(settings: Settings) -> Path:
    return settings.state_dir / "secrets"


def _deliver(args: argparse.Namespace, settings: Settings) -> int:
    from engine.alerts.outbox import RetryPolicy, run_outbox_once
    from engine.alerts.sinks import build_sinks
    from engine.store import open_store, publish_snapshot
    from engine.store.alerts import now_utc

    cfg = settings.alerts
    sinks = build_sinks(cfg, allowed_identifiers=settings.privacy.allowed_identifiers,
                        secrets_dir=_secrets_dir(settings))
    policy = RetryPolicy(base_s=cfg.backoff_base_s, max_s=cfg.backoff_max_s, max_attempts=cfg.max_attempts)
    with open_store(settings.db_path) as store:
        while True:
            report = run_outbox_once(store, sinks, now=now_utc(), policy=policy,
                                     escalate_after_h=cfg.escalate_after_h,
                                     hold_unconfirmed_critical=cfg.critical_waits_for_confirmation)
            if report.delivered or report.escalated or report.retry_scheduled or report.gave_up or args.once:
                print(f"alerts: {report.summary()}", flush=True)
                publish_snapshot(store, settings.snapshot_path)
            if args.once:
                return 0
            time.sleep(args.interval_s)


def _sink(args: argparse.Namespace, settings: Settings) -> int:
    from engine.alerts.receiver import WebhookReceiver
    from engine.alerts.webhook import resolve_hmac_key

    out = args.out or settings.state_dir / "alert-sink" / "received.jsonl"
    key = resolve_hmac_key(settings.alerts.hmac_key, _secrets_dir(settings))
    count = 0
    receiver: WebhookReceiver

    def show(alert: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        kind = "ESCALATED " if alert.get("kind") == "ESCALATION" else ""
        print(f"received {kind}{alert['severity']} {alert['alert_type']} {alert['patient_key']} "
              f"MRI {alert['study_date']}: {alert['reason']} [rests on {alert.get('values_basis', 'proposed')} "
              f"values] -> {alert['link']}", flush=True)
        if args.max_alerts and count >= args.max_alerts:
            receiver.request_stop()

    receiver = WebhookReceiver(hmac_key=key, port=args.port, save_to=out, on_alert=show)
    print(f"alert sink listening on {receiver.url} (saving to {out})", flush=True)
    receiver.serve_forever()
    print(f"alert sink: {count} alerts, {receiver.duplicates} repeats dropped, {receiver.refused} refused")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from flows.cmd_status import open_for_reading
    from engine.store.alerts import list_alerts

    store = open_for_reading(settings)
    if store is None:
        print(f"No store yet at {settings.db_path}")
        return 0
    with store:
        rows = list_alerts(store, patient_key=args.patient, unacknowledged_only=args.open)
    for r in rows:
        state = f"acknowledged by {r['acknowledged_by']}" if r["acknowledged_at"] else "OPEN"
        if r["escalated_at"] and not r["acknowledged_at"]:
            state = "OPEN, escalated"
        print(f"{r['alert_id']:>5} {r['severity']:<8} {r['alert_type']:<30} {r['patient_key']} "
              f"MRI {r['study_date']}  [{state}]\n      {r['reason']}")
    print(f"{len(rows)} alerts")
    return 0


def _ack(args: argparse.Namespace, settings: Settings) -> int:
    from engine.store import open_store
    from engine.store.alerts import acknowledge

    with open_store(settings.db_path) as store, store.transaction() as con:
        done = acknowledge(con, args.alert_id, user=args.user, note=args.note)
    print(f"alert {args.alert_id} acknowledged by {args.user}" if done
          else f"alert {args.alert_id} was not found or is already acknowledged")
    return 0 if done else 1
