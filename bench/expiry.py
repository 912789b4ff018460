"""Purging expired content, and what the portal feels meanwhile.

The database gets ``--messages`` messages (default 100,000; ``--full`` 1,000,000) whose
visibility window ended ten days ago, spread over recipients of one tenant, plus
``--live`` live messages (default 2,000) in reader@partner.test's inbox, written with
bulk inserts copied from one message that went through the real ingest path. Then
``app.domain.expiry.purge_expired()`` (the ``expire`` job's function, batches of 500, each its
own transaction) runs in this process and is timed, while another process asks a
``ccm web`` subprocess on the same database for the reader's inbox at a steady rate
(``--probe-rate``, default 20 requests a second over 2 connections). The same probe
runs first for ``--baseline`` seconds with nothing else going on, for comparison.

Afterwards it checks that every expired message was purged (content gone, recipients
``expired``, an ``expired`` event each) and the live ones were not.

    .venv/bin/python bench/expiry.py                 # 100,000 expired messages, SQLite
    .venv/bin/python bench/expiry.py --postgres
    .venv/bin/python bench/expiry.py --full          # 1,000,000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

READER = "reader@partner.test"


def probe(url: str, cookie: str, rate: float, seconds: float,
          stop_file: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [harness.PYTHON, str(Path(harness.__file__)), "http-load", "--url", url,
         "--cookie", cookie, "--duration", str(seconds), "--concurrency", "2",
         "--rate", str(rate), *(["--stop-file", stop_file] if stop_file else [])],
        stdout=subprocess.PIPE, text=True)


def probe_result(process: subprocess.Popen) -> dict:
    out, _ = process.communicate(timeout=7200)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100000)
    parser.add_argument("--full", action="store_true", help="1,000,000 expired messages")
    parser.add_argument("--live", type=int, default=2000)
    parser.add_argument("--raw-bytes", type=int, default=1000,
                        help="size of each message's body (default 1000)")
    parser.add_argument("--batch", type=int, default=500, help="purge batch (the job's 500)")
    parser.add_argument("--probe-rate", type=float, default=20)
    parser.add_argument("--baseline", type=float, default=10)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=1800,
                        help="stop purging after this long (reported as unfinished)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy this process while it purges")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.full:
        args.messages = 1000000

    from app.clock import utcnow

    with harness.Instance("expiry", postgres=args.postgres) as instance:
        harness.banner(f"expiry on {instance.database}: purge {args.messages} expired "
                       f"messages (batch {args.batch}) while probing the inbox at "
                       f"{args.probe_rate:.0f} req/s; {harness.machine()}")
        instance.import_config(harness.tenant_yaml(ccm=True))
        now = utcnow()
        raw = harness.simple_message("Quarterly figures", args.raw_bytes, READER)
        started = time.monotonic()
        live = harness.LoadPlan(
            [READER] * args.live, [f"Live message {n}" for n in range(args.live)],
            [now - timedelta(minutes=1, seconds=30 * n) for n in range(args.live)], 30, raw)
        harness.bulk_load(instance, live, progress=False)
        people = max(1, args.messages // 40)
        expired = harness.LoadPlan(
            [f"person{n % people}@partner{n % 7}.test" for n in range(args.messages)],
            [f"Old message {n}" for n in range(args.messages)],
            [now - timedelta(days=40, seconds=n) for n in range(args.messages)], 30, raw)
        # The seed of this plan is received now, so it stays live: one more live message.
        counts = harness.bulk_load(instance, expired, batch=10000)
        loaded = time.monotonic() - started
        print(f"  loaded in {loaded:.1f} s ({args.messages / loaded:.0f} messages/s): "
              f"{counts}")
        harness.set_password(instance, READER)

        web = instance.web()
        browser = harness.Browser(instance.http_port)
        browser.sign_in(READER)
        status, _, body = browser.get("/inbox/")
        if status != 200 or b"Live message 0" not in body:
            raise RuntimeError(f"the inbox is not shown ({status})")
        url = f"http://{harness.LOOPBACK}:{instance.http_port}/inbox/"

        baseline = probe_result(probe(url, browser.cookie_header, args.probe_rate,
                                      args.baseline))
        print(f"  baseline inbox: {baseline}", flush=True)

        from sqlalchemy import event

        from app.domain import expiry
        from app.extensions import db

        with tempfile.TemporaryDirectory() as folder:
            stop = os.path.join(folder, "stop")
            during = probe(url, browser.cookie_header, args.probe_rate, args.max_seconds + 60,
                           stop)
            time.sleep(1)
            recorder = harness.record_profile(os.getpid(), "expiry-purge", None) \
                if args.profile else None
            purged = 0
            batches: list[float] = []
            statements: Counter = Counter()
            t0 = time.perf_counter()
            with instance.app().app_context():
                # Round trips, by kind: noise on a shared machine does not move them.
                event.listen(
                    db.engine, "before_cursor_execute",
                    lambda _c, _cursor, statement, *_: statements.update(
                        [statement.split(None, 1)[0].upper()]))
                # In slices of 20 batches, only to report progress and keep to
                # --max-seconds; purge_expired itself loops in batches of --batch.
                while time.perf_counter() - t0 < args.max_seconds:
                    b0 = time.perf_counter()
                    done = expiry.purge_expired(batch=args.batch, limit=args.batch * 20)
                    purged += done
                    if done == 0:
                        break
                    batches.append((time.perf_counter() - b0) / -(-done // args.batch))
                    if len(batches) % 5 == 0:
                        print(f"  purged {purged} in {time.perf_counter() - t0:.0f} s "
                              f"(last batches {batches[-1] * 1000:.0f} ms each)", flush=True)
                db.session.remove()
            seconds = time.perf_counter() - t0
            harness.stop_profile(recorder)
            Path(stop).touch()
            loaded_probe = probe_result(during)
        rss = harness.peak_rss(web.pid)

        purged_rows, with_raw = instance.sql(
            "SELECT count(purged_at), count(raw) FROM message")[0]
        live_rows = instance.sql(
            "SELECT count(*) FROM message WHERE purged_at IS NULL AND raw IS NOT NULL")[0][0]
        expired_recipients = instance.sql(
            "SELECT count(*) FROM recipient WHERE state = 'expired'")[0][0]
        expired_events = instance.sql(
            "SELECT count(*) FROM delivery_event WHERE kind = 'expired'")[0][0]
        unfinished = purged < args.messages

    harness.banner("results")
    rate = purged / seconds if seconds else 0
    print(f"purged {purged} of {args.messages} messages in {seconds:.1f} s: "
          f"{rate:.0f} messages/s{'  (UNFINISHED: --max-seconds reached)' if unfinished else ''}")
    step = max(1, len(batches) // 10)
    print(f"ms per batch of {args.batch}, every {step * 20 * args.batch} messages: "
          + ", ".join(f"{b * 1000:.0f}" for b in batches[::step])
          + f" (last {batches[-1] * 1000:.0f})" if batches else "")
    print(f"SQL statements: {sum(statements.values())} ({dict(statements)}), "
          f"{sum(statements.values()) / max(1, purged) * args.batch:.1f} per batch of "
          f"{args.batch}")
    print(f"checks: {purged_rows} messages purged, {with_raw} still with content "
          f"({live_rows} live), {expired_recipients} recipients expired, "
          f"{expired_events} expired events")
    print(f"{'inbox probe':<22}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}{'errors':>8}")
    for label, result in (("baseline (idle)", baseline), ("during the purge", loaded_probe)):
        print(f"{label:<22}{result['requests']:>9}{result['p50_ms']:>9.1f}"
              f"{result['p95_ms']:>9.1f}{result['p99_ms']:>9.1f}{result['max_ms']:>9.1f}"
              f"{result['errors']:>8}")
    print(f"ccm web peak RSS: {rss / 2**20:.0f} MiB")
    if recorder is not None:
        print(harness.summarize_profile("expiry-purge"))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "messages": args.messages, "purged": purged, "seconds": seconds, "rate": rate,
            "baseline": baseline, "during": loaded_probe}, indent=2))


if __name__ == "__main__":
    main()
