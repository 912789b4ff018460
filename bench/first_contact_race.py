"""Regression check: concurrent first messages to a new recipient refused with 451.

Found by bench/ingest.py on PostgreSQL at commits 6edae0a..e49241b (3 of the 20
warm-up messages refused in every run; this script: 15 of 20). Fixed by e9545ed (the
account is created in a savepoint and reused when another transaction made it first),
after which this script shows "not seen".

What it does: ``--connections`` SMTP connections (default 4) each send one message,
released at the same instant, to the same recipient who has no portal account yet,
routed by CCM. Before the fix, each DATA ran ``isolation._account`` in its own
transaction: every one found no account and inserted one; the unique constraint
(tenant_id, email) let one commit and the others failed with UniqueViolation, which the
ingress answers with "451 4.3.0 Temporary failure". Nothing was lost (the client keeps
the message and retries later), but the first message to a recipient reaching the
gateway over several connections at once was delayed by the sender's retry interval,
with a traceback in the log per refusal. On SQLite the first flush takes the database's
write lock, which serializes the transactions, so the race never showed there.

    .venv/bin/python bench/first_contact_race.py --postgres
    .venv/bin/python bench/first_contact_race.py            # SQLite, for comparison
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5, help="new recipients, one a round")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()

    with harness.Instance("race", postgres=args.postgres) as instance:
        harness.banner(f"first contact on {instance.database}: {args.connections} "
                       f"connections send at once to a new recipient, {args.rounds} rounds; "
                       f"{harness.machine()}")
        instance.import_config(harness.tenant_yaml(ccm=True))
        smtp = instance.smtp()
        replies: list[str] = []
        lock = threading.Lock()
        for round_number in range(args.rounds):
            to = f"new{round_number}@partner.test"
            clients = [smtplib.SMTP(harness.LOOPBACK, instance.smtp_port)
                       for _ in range(args.connections)]
            gate = threading.Barrier(args.connections)

            def send(client, number, to=to, gate=gate) -> None:
                raw = harness.simple_message(f"First contact {number}", 500, to)
                gate.wait()
                try:
                    client.sendmail("alice@acme.test", [to], raw)
                    reply = "250"
                except smtplib.SMTPDataError as error:
                    reply = f"{error.smtp_code} {error.smtp_error.decode()}"
                with lock:
                    replies.append(reply)
                client.quit()

            threads = [threading.Thread(target=send, args=(c, n)) for n, c in enumerate(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        log = smtp.log.read_text(errors="replace")
        violations = sum(1 for block in log.split("could not store a message")[1:]
                         if "UniqueViolation" in block.split("ERROR", 1)[0]
                         or "UNIQUE constraint failed" in block.split("ERROR", 1)[0])
        accounts = instance.sql("SELECT count(*) FROM users WHERE email LIKE 'new%'")[0][0]

    refused = [r for r in replies if r != "250"]
    print(f"{len(replies)} messages: {len(replies) - len(refused)} accepted, "
          f"{len(refused)} refused {sorted(set(refused))}")
    print(f"{accounts} accounts created for {args.rounds} new recipients; the ingress log "
          f"has {violations} tracebacks of a unique-constraint error")
    print("race: " + ("REPRODUCED" if refused else "not seen"))


if __name__ == "__main__":
    main()
