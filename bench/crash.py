"""Crash safety: SIGKILL ``ccm smtp`` and ``ccm worker`` at random moments.

Part 1, the ingress. ``--messages`` messages (default 300; ``--full`` 1000), each to
three recipients routed by CCM, go over 4 concurrent SMTP connections into ``ccm smtp``
while a killer thread sends it SIGKILL every 0.3-2 s (random) and starts it again at
once. Senders behave like an MTA: whatever does not get a 250 is sent again. Every
attempt carries its own Message-ID (``<crash-N-aK@acme.test>``: message N, attempt K),
so each row in the database can be matched to the attempt that wrote it. Then:

* every attempt that got a 250 is in the database exactly once (else: lost mail);
* no stored message is half there: each has its three recipient rows, each recipient
  its delivery events and its queued notification;
* attempts stored without their 250 reaching the client (the crash fell between the
  commit and the reply) are counted: the sender retries them, so the recipients see
  that message twice. This window exists in every MTA that acknowledges after commit.

Part 2, the worker. ``--messages`` messages to one external recipient each are queued
(CCM_OUTBOUND=smtp:// an SmtpSink), and ``ccm worker`` (CCM_WORKER_INTERVAL=1) delivers
them while being killed every 0.3-1.5 s and restarted. A killed worker leaves the
items it had taken leased for 10 minutes: up to 100 a run before 4d4155c, since then
only the one each of its threads was sending (one here: every recipient is in one
domain); before 8ab1841 also the ``deliver`` job's own 15-minute lease. The benchmark
first shows what a restarted worker can deliver meanwhile (``--stall-check`` seconds,
leases untouched), then stands in for the passing of time after each kill by moving
those leases into the past (nothing else is touched). At the end every queued item must be
delivered, and each Message-ID must have reached the sink; more than once is a
duplicate (the window between the sink's 250 and the worker's commit).

    .venv/bin/python bench/crash.py                 # 300 messages, SQLite
    .venv/bin/python bench/crash.py --full --postgres
"""

from __future__ import annotations

import argparse
import random
import smtplib
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

SENDER = "alice@acme.test"
RCPTS = ["pat@partner.test", "sam@partner.test", "kim@elsewhere.test"]


# --- part 1: the ingress ---------------------------------------------------------------


def ingress(args) -> dict:
    rng = random.Random(args.seed)
    with harness.Instance("crash-smtp", postgres=args.postgres) as instance:
        harness.banner(f"crash 1/2, ccm smtp on {instance.database}: {args.messages} "
                       f"messages x {len(RCPTS)} recipients, SIGKILL every "
                       f"{args.kill_min}-{args.kill_max} s; {harness.machine()}")
        instance.import_config(harness.tenant_yaml(ccm=True))
        smtp = [instance.smtp()]
        # The recipients' accounts are created (argon2id) by a first message, before
        # the kills begin.
        with smtplib.SMTP(harness.LOOPBACK, instance.smtp_port) as client:
            client.sendmail(SENDER, RCPTS, harness.simple_message("first contact", 500))

        lock = threading.Lock()
        todo = list(range(args.messages))
        acked: dict[str, int] = {}  # Message-ID -> message number
        attempts: dict[str, int] = {}  # every Message-ID tried
        failures: Counter = Counter()
        done = threading.Event()
        deadline = time.monotonic() + args.max_seconds

        def sender() -> None:
            client = None
            while time.monotonic() < deadline:
                with lock:
                    if not todo:
                        break
                    number = todo.pop(0)
                attempt = 0
                while time.monotonic() < deadline:
                    attempt += 1
                    message_id = f"<crash-{number}-a{attempt}@acme.test>"
                    raw = harness.simple_message(f"Crash test {number}", 1500,
                                                 ", ".join(RCPTS), message_id)
                    with lock:
                        attempts[message_id] = number
                    try:
                        if client is None:
                            client = smtplib.SMTP(harness.LOOPBACK, instance.smtp_port,
                                                  timeout=30)
                        client.sendmail(SENDER, RCPTS, raw)
                    except (OSError, smtplib.SMTPException) as error:
                        with lock:
                            failures[type(error).__name__] += 1
                        if client is not None:
                            client.close()
                        client = None
                        time.sleep(0.1)
                        continue
                    with lock:
                        acked[message_id] = number
                    break
            if client is not None:
                try:
                    client.quit()
                except (OSError, smtplib.SMTPException):
                    client.close()

        kills = [0]

        def killer() -> None:
            while not done.wait(rng.uniform(args.kill_min, args.kill_max)):
                smtp[0].kill()
                kills[0] += 1
                smtp[0] = instance.smtp()

        threads = [threading.Thread(target=sender) for _ in range(4)]
        kill_thread = threading.Thread(target=killer)
        started = time.monotonic()
        for thread in threads:
            thread.start()
        kill_thread.start()
        for thread in threads:
            thread.join()
        done.set()
        kill_thread.join()
        seconds = time.monotonic() - started

        stored = Counter(mid for (mid,) in instance.sql(
            "SELECT message_id_header FROM message WHERE message_id_header LIKE '<crash-%'"))
        lost = [mid for mid in acked if stored[mid] == 0]
        twice = [mid for mid, n in stored.items() if n > 1]
        unacked_stored = [mid for mid in stored if mid not in acked]
        logical = Counter(attempts[mid] for mid in stored)
        logical_duplicates = sum(1 for n in logical.values() if n > 1)
        incomplete = instance.sql(
            "SELECT m.message_id_header, count(r.id) FROM message m "
            "LEFT JOIN recipient r ON r.message_id = m.id "
            "WHERE m.message_id_header LIKE '<crash-%' "
            "GROUP BY m.id, m.message_id_header HAVING count(r.id) <> :n", {"n": len(RCPTS)})
        no_events = instance.sql(
            "SELECT count(*) FROM recipient r JOIN message m ON m.id = r.message_id "
            "WHERE m.message_id_header LIKE '<crash-%' AND (r.state <> 'held' OR NOT EXISTS "
            "(SELECT 1 FROM delivery_event e WHERE e.recipient_id = r.id AND e.kind = 'ccm') "
            "OR NOT EXISTS (SELECT 1 FROM outbound_item o WHERE o.recipient_id = r.id))")[0][0]
        unfinished = [n for n in range(args.messages) if n not in set(acked.values())]

    result = {
        "messages": args.messages, "seconds": seconds, "kills": kills[0],
        "attempts": len(attempts), "acked": len(acked), "failures": dict(failures),
        "stored": sum(stored.values()), "lost": lost, "stored_twice": twice,
        "stored_without_250": len(unacked_stored), "logical_duplicates": logical_duplicates,
        "incomplete": incomplete, "recipients_missing_parts": no_events,
        "unfinished": len(unfinished),
    }
    print(f"{args.messages} messages in {seconds:.1f} s with {kills[0]} kills: "
          f"{len(attempts)} attempts, {len(acked)} got 250; failures seen by clients: "
          f"{dict(failures)}")
    print(f"  acknowledged but missing from the database (lost): {len(lost)} {lost[:5]}")
    print(f"  one attempt stored more than once: {len(twice)}")
    print(f"  stored without the 250 reaching the client: {len(unacked_stored)} "
          f"(so {logical_duplicates} messages are in the database twice after the retry)")
    print(f"  messages without all {len(RCPTS)} recipient rows: {len(incomplete)}; "
          f"recipients without their events or notification: {no_events}")
    if unfinished:
        print(f"  NOT FINISHED within --max-seconds: {len(unfinished)} messages never got 250")
    verdict = not lost and not twice and not incomplete and not no_events and not unfinished
    print(f"  ingress: {'PASS' if verdict else 'FAIL'}")
    result["pass"] = verdict
    return result


# --- part 2: the worker ----------------------------------------------------------------


def expire_leases(instance: harness.Instance) -> None:
    """Move the taken items' leases (and the deliver job's, where it still has one) into
    the past: what 10 minutes of waiting would do after a crash, without the waiting."""
    from app.clock import utcnow

    past = utcnow().replace(year=2000)
    instance.sql("UPDATE job SET lease_until = :past WHERE name = 'deliver' "
                 "AND lease_until IS NOT NULL", {"past": past})
    instance.sql("UPDATE outbound_item SET lease_until = :past WHERE state = 'sending'",
                 {"past": past})


def worker(args) -> dict:
    from servers import SmtpSink

    rng = random.Random(args.seed + 1)
    sink = SmtpSink().start()
    sink.delay(args.sink_delay)
    # When the sink took each copy, and when each kill came: for the duplicates, the
    # time from the first copy to the kill that made the worker send it again.
    taken_at: dict[str, list[float]] = {}
    kill_times: list[float] = []
    capture = sink._capture

    def timed_capture(delivery) -> None:
        taken_at.setdefault(delivery.message["Message-ID"], []).append(time.monotonic())
        capture(delivery)

    sink._capture = timed_capture
    try:
        instance = harness.Instance("crash-worker", postgres=args.postgres, env_extra={
            "CCM_OUTBOUND": f"smtp://{harness.LOOPBACK}:{sink.port}",
            "CCM_WORKER_INTERVAL": "1", "CCM_SMTP_TIMEOUT": "10"})
        with instance:
            harness.banner(f"crash 2/2, ccm worker on {instance.database}: {args.messages} "
                           f"deliveries to an SmtpSink (it answers after "
                           f"{args.sink_delay * 1000:.0f} ms), SIGKILL every "
                           f"{args.worker_kill_min}-{args.worker_kill_max} s; {harness.machine()}")
            instance.import_config(harness.tenant_yaml(ccm=False))
            from app.domain import ingest
            from app.extensions import db

            def queue(prefix: str, count: int) -> None:
                with instance.app().app_context():
                    for number in range(count):
                        ingest.receive(harness.simple_message(
                            f"Delivery {number}", 1500, "pat@partner.test",
                            f"<{prefix}-{number}@acme.test>"), SENDER, ["pat@partner.test"],
                            client_address="127.0.0.1")
                        db.session.commit()
                    db.session.remove()

            def delivered_rows() -> int:
                return instance.sql("SELECT count(*) FROM outbound_item WHERE kind = "
                                    "'delivery' AND state = 'done'")[0][0]

            def queued_rows() -> int:
                return instance.sql("SELECT count(*) FROM outbound_item WHERE kind = "
                                    "'delivery'")[0][0]

            # 1. Kill and restart at random while it delivers.
            queue("deliver", args.messages)
            queued = queued_rows()
            process = instance.worker()
            kills = 0
            deadline = time.monotonic() + args.max_seconds
            started = time.monotonic()
            while time.monotonic() < deadline and delivered_rows() < queued:
                time.sleep(rng.uniform(args.worker_kill_min, args.worker_kill_max))
                if delivered_rows() >= queued:
                    break
                process.kill()
                kill_times.append(time.monotonic())
                kills += 1
                expire_leases(instance)
                process = instance.worker()
            while time.monotonic() < deadline and delivered_rows() < queued:
                time.sleep(0.2)
            seconds = time.monotonic() - started
            time.sleep(0.5)
            process.kill()
            states = dict(instance.sql("SELECT state, count(*) FROM outbound_item WHERE "
                                       "kind = 'delivery' GROUP BY state"))
            recipient_states = dict(instance.sql(
                "SELECT state, count(*) FROM recipient GROUP BY state"))
            delivered_events = instance.sql(
                "SELECT count(*) FROM delivery_event WHERE kind = 'delivered'")[0][0]

            # 2. What does one crash hold up? 200 more messages; kill the worker once
            #    while it delivers them, restart it, and watch for --stall-check seconds
            #    without touching any lease.
            stall = None
            if args.stall_check > 0:
                queue("stall", 200)
                total = queued_rows()
                sink_start = len(sink.messages)
                process = instance.worker()
                while len(sink.messages) == sink_start:
                    time.sleep(0.01)
                time.sleep(0.05)
                process.kill()
                kill_times.append(time.monotonic())
                before = delivered_rows()
                leased = instance.sql("SELECT count(*), max(lease_until) FROM outbound_item "
                                      "WHERE state = 'sending'")[0]
                job_lease = instance.sql(
                    "SELECT lease_until FROM job WHERE name = 'deliver'")[0][0]
                process = instance.worker()
                time.sleep(args.stall_check)
                after = delivered_rows()
                stuck = instance.sql("SELECT count(*) FROM outbound_item WHERE "
                                     "state = 'sending'")[0][0]
                stall = {"delivered": after - before, "leased_by_dead_worker": leased[0],
                         "item_lease_until": str(leased[1]), "job_lease_until": str(job_lease),
                         "still_leased": stuck, "seconds": args.stall_check}
                print(f"  stall check: 200 more queued; killed the worker after "
                      f"{before - queued} of them; it had {leased[0]} items leased until "
                      f"{leased[1]} UTC, and the deliver job's lease was "
                      f"{job_lease or 'none'}. Restarted, waited {args.stall_check:.0f} s: "
                      f"{after - before} more delivered, {stuck} still waiting for the dead "
                      f"worker's lease, {total - after} not delivered")
                process.kill()
                expire_leases(instance)
                process = instance.worker()
                end = time.monotonic() + 120
                while time.monotonic() < end and delivered_rows() < total:
                    time.sleep(0.2)
                time.sleep(0.5)
                process.kill()
                stall["all_delivered_after_leases"] = delivered_rows() == total
    finally:
        sink.stop()

    seen = Counter(d.message["Message-ID"] for d in sink.messages)
    wanted = {f"<deliver-{n}@acme.test>" for n in range(args.messages)}
    if stall is not None:
        wanted |= {f"<stall-{n}@acme.test>" for n in range(200)}
    missing = sorted(wanted - set(seen))
    duplicates = {mid: n for mid, n in seen.items() if n > 1}
    extra = sum(n - 1 for n in duplicates.values())
    print(f"{queued} queued deliveries, {kills} kills in {seconds:.1f} s; items by state "
          f"{states}; recipients by state {recipient_states}; {delivered_events} "
          f"'delivered' events")
    print(f"  the sink got {len(sink.messages)} messages: {len(wanted) - len(missing)} of "
          f"{len(wanted)} Message-IDs, {len(missing)} missing {missing[:5]}, "
          f"{len(duplicates)} delivered more than once ({extra} extra copies)")
    gaps = []
    for mid in duplicates:
        first = taken_at[mid][0]
        after = [k - first for k in kill_times if k >= first]
        gaps.append(min(after) * 1000 if after else float("nan"))
    if gaps:
        print(f"  for each duplicate, the kill came this long after the sink took the "
              f"first copy (ms): {', '.join(f'{g:.0f}' for g in sorted(gaps))}")
    verdict = not missing and states.get("done", 0) == queued and (
        stall is None or stall["all_delivered_after_leases"])
    print(f"  worker: {'PASS' if verdict else 'FAIL'} (duplicates allowed, counted)")
    return {"queued": queued, "kills": kills, "seconds": seconds, "states": states,
            "sink": len(sink.messages), "missing": missing, "duplicates": len(duplicates),
            "extra_copies": extra, "stall": stall, "pass": verdict}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--full", action="store_true", help="1000 messages")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--kill-min", type=float, default=0.3)
    parser.add_argument("--kill-max", type=float, default=2.0)
    parser.add_argument("--worker-kill-min", type=float, default=0.3)
    parser.add_argument("--worker-kill-max", type=float, default=1.5)
    parser.add_argument("--sink-delay", type=float, default=0.02,
                        help="seconds the sink waits before its 250 (a remote server)")
    parser.add_argument("--stall-check", type=float, default=20,
                        help="seconds to watch the queue after a kill, leases untouched "
                             "(0: skip)")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=("smtp", "worker"))
    args = parser.parse_args()
    if args.full:
        args.messages = 1000
    results = {}
    if args.only != "worker":
        results["smtp"] = ingress(args)
    if args.only != "smtp":
        results["worker"] = worker(args)
    harness.banner("results")
    for name, result in results.items():
        print(f"{name}: {'PASS' if result['pass'] else 'FAIL'}")


if __name__ == "__main__":
    main()
