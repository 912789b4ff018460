"""Downstream faults: every queued item ends delivered or bounced, and says why.

Each fault is a real SMTP server (tests/servers.py's SmtpSink) or the lack of one, at
its own loopback address, all on one port (CCM_SMTP_DELIVERY_PORT), named as the MX of
its own domain by a real DNS server on loopback (tests/servers.py's DnsServer); the
gateway delivers by MX resolution (CCM_OUTBOUND=mx), as in production:

    domain          MX address   behaviour                             expected end
    ok.test         127.0.0.2    accepts                               delivered
    flaky.test      127.0.0.3    451 to the first 2 DATA, then accepts  delivered (retried)
    dropping.test   127.0.0.4    drops the first 2 connections          delivered (retried)
                                 mid-DATA without a reply
    slowish.test    127.0.0.5    waits 1 s before each 250              delivered
    tempfail.test   127.0.0.6    451 to every RCPT                      bounced (gave up)
    slow.test       127.0.0.7    waits longer than CCM_SMTP_TIMEOUT     bounced (gave up)
    down.test       127.0.0.8    nothing listens                        bounced (gave up)
    reject.test     127.0.0.9    550 to every RCPT                      bounced at once

``--per-domain`` messages (default 4) for each domain go in through ``ccm smtp``; then
``ccm jobs run deliver`` runs again and again (a process each time, as cron would) with
fast retries (CCM_RETRY_FIRST_SECONDS=1, at most 2 s apart, giving up after
``--give-up`` seconds, default 15; CCM_SMTP_TIMEOUT=2) until nothing is pending. Bounce
reports (DSNs) go to the sender alice@acme.test through CCM_INTERNAL_RELAY, another
SmtpSink, and are counted. At the end: every item's final state against the expected
one, each recipient's delivery events (one recipient per domain shown in full), and
how long items waited in the queue (one slow server delays everything behind it).

    .venv/bin/python bench/faults.py
    .venv/bin/python bench/faults.py --postgres --per-domain 20
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

SENDER = "alice@acme.test"
TIMEOUT = 2  # CCM_SMTP_TIMEOUT

#: domain, loopback address, set-up of its sink (None: nothing listens), expected end
FAULTS = [
    ("ok.test", "127.0.0.2", lambda sink: None, "delivered"),
    ("flaky.test", "127.0.0.3", lambda sink: sink.fail("DATA", 451, "4.3.0 Try later", 2),
     "delivered"),
    ("dropping.test", "127.0.0.4", lambda sink: sink.drop_during_data(2), "delivered"),
    ("slowish.test", "127.0.0.5", lambda sink: sink.delay(1), "delivered"),
    ("tempfail.test", "127.0.0.6",
     lambda sink: sink.fail("RCPT", 451, "4.2.1 Mailbox busy", 10**6), "bounced"),
    ("slow.test", "127.0.0.7", lambda sink: sink.delay(TIMEOUT + 3), "bounced"),
    ("down.test", "127.0.0.8", None, "bounced"),
    ("reject.test", "127.0.0.9",
     lambda sink: sink.fail("RCPT", 550, "5.1.1 No such user", 10**6), "bounced"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-domain", type=int, default=4)
    parser.add_argument("--give-up", type=int, default=15,
                        help="CCM_RETRY_GIVE_UP_SECONDS (default 15)")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()

    from servers import DnsServer, SmtpSink

    port = harness.free_port()
    dns = DnsServer().start()
    relay = SmtpSink().start()
    sinks = {}
    try:
        for domain, address, setup, _ in FAULTS:
            dns.add_mx(domain, 10, f"mx.{domain}")
            dns.add_a(f"mx.{domain}", address)
            if setup is not None:
                sinks[domain] = SmtpSink(host=address, port=port).start()
                setup(sinks[domain])
        instance = harness.Instance("faults", postgres=args.postgres, env_extra={
            "CCM_OUTBOUND": "mx", "CCM_DNS_SERVERS": dns.address,
            "CCM_MX_ALLOWED_NETWORKS": "127.0.0.0/8",
            "CCM_SMTP_DELIVERY_PORT": port,
            "CCM_INTERNAL_RELAY": f"smtp://{harness.LOOPBACK}:{relay.port}",
            "CCM_RETRY_FIRST_SECONDS": 1, "CCM_RETRY_MAX_SECONDS": 2,
            "CCM_RETRY_GIVE_UP_SECONDS": args.give_up, "CCM_SMTP_TIMEOUT": TIMEOUT})
        with instance:
            harness.banner(f"faults on {instance.database}: {args.per_domain} messages for "
                           f"each of {len(FAULTS)} domains; retries after 1-2 s, give up "
                           f"after {args.give_up} s, SMTP timeout {TIMEOUT} s; "
                           f"{harness.machine()}")
            instance.import_config(harness.tenant_yaml(ccm=False))
            smtp = instance.smtp()
            with smtplib.SMTP(harness.LOOPBACK, instance.smtp_port) as client:
                for number in range(args.per_domain):
                    for domain, *_ in FAULTS:
                        to = f"user{number}@{domain}"
                        client.sendmail(SENDER, [to], harness.simple_message(
                            f"To {domain} {number}", 800, to))
            smtp.stop()
            total = len(FAULTS) * args.per_domain

            runs = []
            started = time.monotonic()
            while time.monotonic() - started < args.max_seconds:
                t0 = time.monotonic()
                out = instance.ccm("jobs", "run", "deliver", check=False)
                runs.append((time.monotonic() - t0, out.stdout.strip() or out.stderr.strip()))
                open_items = instance.sql(
                    "SELECT count(*) FROM outbound_item WHERE kind = 'delivery' "
                    "AND state IN ('pending', 'sending')")[0][0]
                if open_items == 0:
                    break
                time.sleep(0.5)
            seconds = time.monotonic() - started
            # DSNs are queued by the bounces: one more run sends the last of them.
            instance.ccm("jobs", "run", "deliver", check=False)

            items = instance.sql(
                "SELECT r.id, r.address, r.state, o.state, o.attempts, o.created_at, "
                "o.finished_at, o.last_error FROM outbound_item o JOIN recipient r "
                "ON r.id = o.recipient_id WHERE o.kind = 'delivery' ORDER BY r.id")
            events = defaultdict(list)
            for recipient_id, kind, text in instance.sql(
                    "SELECT recipient_id, kind, text FROM delivery_event ORDER BY id"):
                events[recipient_id].append((kind, text))
            dsn_items = dict(instance.sql(
                "SELECT state, count(*) FROM outbound_item WHERE kind = 'dsn' GROUP BY state"))
    finally:
        for sink in sinks.values():
            sink.stop()
        relay.stop()
        dns.stop()

    harness.banner("results")
    print(f"{len(runs)} runs of `ccm jobs run deliver` in {seconds:.1f} s "
          f"(each {min(r[0] for r in runs):.1f}-{max(r[0] for r in runs):.1f} s)")
    expected = {domain: end for domain, _, _, end in FAULTS}
    by_domain: dict[str, list] = defaultdict(list)
    for row in items:
        by_domain[row[1].rpartition("@")[2]].append(row)
    failures = 0
    print(f"{'domain':<15}{'items':>6}  {'final states':<26}{'expected':<11}{'tries':>7}"
          f"{'queued s':>10}  last error / why")
    for domain, *_ in FAULTS:
        rows = by_domain[domain]
        states = Counter(row[2] for row in rows)
        ok = set(states) == {expected[domain]} and len(rows) == args.per_domain
        unexplained = [row for row in rows if not _explained(row[2], events[row[0]])]
        failures += (not ok) + len(unexplained)
        waits = [(_time(row[6]) - _time(row[5])).total_seconds() for row in rows if row[6]]
        last = next((row[7] for row in rows if row[7]), "")
        print(f"{domain:<15}{len(rows):>6}  {dict(states)!s:<26}{expected[domain]:<11}"
              f"{sum(row[4] for row in rows):>7}{max(waits, default=0):>10.1f}  "
              f"{'' if ok else 'UNEXPECTED  '}{last[:70]}")
        if unexplained:
            print(f"  {len(unexplained)} recipients whose events do not explain their state")
    print(f"\nbounce reports: {len(relay.messages)} reached the sender's relay "
          f"(DSN queue items {dsn_items}); bounced recipients: "
          f"{sum(1 for row in items if row[2] == 'bounced')}")
    if len(relay.messages) != sum(1 for row in items if row[2] == "bounced"):
        failures += 1
        print("  MISMATCH between bounces and bounce reports")
    harness.banner("delivery events of the first recipient of each domain")
    for domain, *_ in FAULTS:
        row = by_domain[domain][0]
        print(f"{row[1]} ({row[2]}):")
        for kind, text in events[row[0]]:
            print(f"    {kind:<10} {text[:150]}")
    print(f"\nfaults: {'PASS' if failures == 0 and len(items) == total else 'FAIL'} "
          f"({total} items, {failures} problems)")


def _time(value) -> datetime:
    """SQLite hands raw SQL's timestamps back as text."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _explained(state: str, events: list[tuple[str, str]]) -> bool:
    """The events end with the recipient's state, and every retry has its reason."""
    kinds = [kind for kind, _ in events]
    final = {"delivered": "delivered", "bounced": "bounced"}.get(state)
    return final is not None and kinds and kinds[-1] == final and all(
        text.strip() for _, text in events)


if __name__ == "__main__":
    main()
