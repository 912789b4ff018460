"""First contact at intake: a message to 100 new recipients, and another client meanwhile.

A real ``ccm smtp`` (production argon2id parameters, a route policy sending every
recipient by CCM) gets, round after round, one message to ``--recipients`` recipients
new to the tenant on one connection and, at the same moment, a one-recipient message
(to a recipient the gateway already knows) on another: both clients send MAIL and RCPT
first, then their DATA at once. Printed: each DATA's time to its 250, per round, and
the median over the rounds. The goal (the issue's part 2): both under 1 s.

    .venv/bin/python bench/first_contact.py [--rounds 5] [--recipients 100] [--postgres]
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

KNOWN = "known@partner.test"


def timed_data(client: smtplib.SMTP, rcpts: list[str], raw: bytes,
               gate: threading.Barrier, seconds: dict, name: str) -> None:
    """MAIL, RCPTs, then (once the other client is as far) DATA, timed to its 250."""
    client.ehlo()
    client.mail("alice@acme.test")
    for rcpt in rcpts:
        code, reply = client.rcpt(rcpt)
        if code != 250:
            raise RuntimeError(f"RCPT {rcpt}: {code} {reply!r}")
    gate.wait(timeout=60)
    started = time.perf_counter()
    code, reply = client.data(raw)
    seconds[name] = time.perf_counter() - started
    if code != 250:
        raise RuntimeError(f"DATA: {code} {reply!r}")


def round_(instance: harness.Instance, number: int, recipients: int) -> dict:
    new = [f"r{number}-{n}@partner.test" for n in range(recipients)]
    big = harness.simple_message(f"To {recipients} at once, round {number}", 2000, new[0])
    small = harness.simple_message(f"One recipient, round {number}", 2000, KNOWN)
    seconds: dict = {}
    gate = threading.Barrier(2)
    clients = [smtplib.SMTP(harness.LOOPBACK, instance.smtp_port, timeout=120)
               for _ in range(2)]
    threads = [threading.Thread(target=timed_data, args=(clients[0], new, big, gate,
                                                         seconds, "new")),
               threading.Thread(target=timed_data, args=(clients[1], [KNOWN], small, gate,
                                                         seconds, "other"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.quit()
    if set(seconds) != {"new", "other"}:
        raise RuntimeError(f"round {number}: a client failed (see above)")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--recipients", type=int, default=100)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()

    with harness.Instance("first-contact", postgres=args.postgres) as instance:
        harness.banner(f"first contact on {instance.database}: {args.recipients} new "
                       f"recipients in one message, one known recipient on another "
                       f"connection meanwhile, {args.rounds} rounds; {harness.machine()}")
        instance.import_config(harness.tenant_yaml(ccm=True))
        instance.smtp()
        with smtplib.SMTP(harness.LOOPBACK, instance.smtp_port) as warm_up:  # KNOWN's account
            warm_up.sendmail("alice@acme.test", [KNOWN],
                             harness.simple_message("Warm-up", 500, KNOWN))
        results = []
        for number in range(args.rounds):
            seconds = round_(instance, number, args.recipients)
            results.append(seconds)
            print(f"  round {number}: {args.recipients} new recipients' 250 after "
                  f"{seconds['new'] * 1000:.0f} ms; the other client's after "
                  f"{seconds['other'] * 1000:.0f} ms", flush=True)
        for name, label in (("new", f"{args.recipients} new recipients"),
                            ("other", "the other client (1 recipient)")):
            values = [r[name] * 1000 for r in results]
            print(f"  {label}: median {statistics.median(values):.0f} ms, "
                  f"max {max(values):.0f} ms")
        hashes = instance.sql("SELECT count(*) FROM users WHERE password_hash IS NOT NULL "
                              "AND email LIKE 'r%'")[0][0]
        print(f"  new accounts with a password hash after intake: {hashes}")


if __name__ == "__main__":
    main()
