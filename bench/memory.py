"""Peak memory for one large message: ``ccm smtp`` receiving it, ``ccm web`` serving it.

A message of ``--size`` MiB (default 25: a text part and one attachment, base64 as mail
clients send it) goes from alice@acme.test to pat@partner.test by CCM (a route policy
sends everything by CCM). pat's account is created by that delivery, as in production;
the benchmark then sets its password in the database with app.domain.passwords.hash_password
and signs in as pat to open the message and download the attachment.

Peak RSS is VmHWM from /proc/<pid>/status. Before each step the peak is reset to the
current RSS (writing 5 to /proc/<pid>/clear_refs), after a warm-up that has loaded
everything else (a small message first, so the new account's argon2id hash, 64 MiB by
design, is not counted against the large message). Reported: the baseline RSS, the peak,
the growth (peak - baseline) and growth / message size. Goal: < 4x the message size.
The first row is the floor: a bare aiosmtpd server (ingest.py's, accepting and
discarding) receiving the same message, measured the same way; aiosmtpd keeps DATA as
one bytearray per line before joining them, so ``ccm smtp`` cannot do better than it.

    .venv/bin/python bench/memory.py               # 25 MiB
    .venv/bin/python bench/memory.py --size 45 --postgres
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import smtplib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import ingest

SENDER, RECIPIENT = "alice@acme.test", "pat@partner.test"


def large_message(size: int) -> tuple[bytes, bytes]:
    """A message of about ``size`` bytes and its attachment (random, so incompressible)."""
    # base64 in lines of 76 characters and CRLF: 78 bytes for every 57 of content
    attachment = os.urandom(int(size * 57 / 78) - 4096)
    raw = harness.simple_message("The large one", 2000, RECIPIENT, attachment=attachment)
    return raw, attachment


class Meter:
    """Reset the peak, run a step, report what it cost."""

    def __init__(self, pid: int, size: int):
        self.pid, self.size = pid, size
        self.rows: list[dict] = []

    def measure(self, label: str, step) -> object:
        time.sleep(0.3)
        baseline = harness.current_rss(self.pid)
        reset = harness.reset_peak_rss(self.pid)
        started = time.perf_counter()
        result = step()
        seconds = time.perf_counter() - started
        time.sleep(0.3)
        peak = harness.peak_rss(self.pid)
        growth = peak - baseline
        self.rows.append({"step": label, "baseline": baseline, "peak": peak, "growth": growth,
                          "ratio": growth / self.size, "peak_ratio": peak / self.size,
                          "seconds": seconds, "reset": reset})
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=float, default=25, help="message size in MiB")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--breakdown", action="store_true",
                        help="also trace each step's Python allocations in this process")
    parser.add_argument("--json")
    args = parser.parse_args()
    raw, attachment = large_message(int(args.size * 2**20))
    size = len(raw)

    floor = bare_aiosmtpd(raw, size)
    with harness.Instance("memory", postgres=args.postgres) as instance:
        harness.banner(f"memory on {instance.database}: one message of {size:,} bytes "
                       f"({size / 2**20:.1f} MiB, attachment {len(attachment):,} bytes); "
                       f"{harness.machine()}")
        instance.import_config(harness.tenant_yaml(ccm=True))
        # one process: the one measured takes every message (not the kernel's pick of two)
        smtp = instance.smtp(processes=1)
        rows = [floor]

        def send(message: bytes) -> None:
            with smtplib.SMTP(harness.LOOPBACK, instance.smtp_port, timeout=300) as client:
                client.sendmail(SENDER, [RECIPIENT], message)

        send(harness.simple_message("Warm-up", 2000, RECIPIENT))  # creates pat's account
        meter = Meter(smtp.pid, size)
        meter.measure("ccm smtp: receive and store", lambda: send(raw))
        rows += meter.rows
        if not all(r["reset"] for r in rows):
            print("  (could not reset VmHWM: peaks include start-up and warm-up)")

        public_id, stored = instance.sql(
            "SELECT public_id, size FROM message WHERE subject = 'The large one'")[0]
        print(f"  stored: {stored:,} bytes")
        harness.set_password(instance, RECIPIENT)

        web = instance.web()
        browser = harness.Browser(instance.http_port)
        browser.sign_in(RECIPIENT)
        status, _, _ = browser.get("/inbox/")
        assert status == 200, status
        meter = Meter(web.pid, size)

        def open_page():
            status, _, body = browser.get(f"/inbox/{public_id}", timeout=300)
            if status != 200 or b"figures.bin" not in body:
                raise RuntimeError(f"message page: {status}")

        def download():
            status, _, body = browser.get(f"/inbox/{public_id}/parts/1", timeout=300)
            if status != 200:
                raise RuntimeError(f"download: {status}")
            return body

        meter.measure("ccm web: open the message page", open_page)
        body = meter.measure("ccm web: download the attachment", download)
        rows += meter.rows
        intact = hashlib.sha256(body).digest() == hashlib.sha256(attachment).digest()
        breakdown = where_it_goes(instance, raw) if args.breakdown else []

    harness.banner("results")
    print(f"message {size:,} bytes; the download is {'intact' if intact else 'CORRUPTED'} "
          f"({len(body):,} bytes)")
    print(f"{'step':<36}{'baseline MiB':>13}{'peak MiB':>10}{'growth MiB':>12}"
          f"{'growth/size':>13}{'peak/size':>11}{'seconds':>9}  goal < 4x")
    for r in rows:
        verdict = "met" if r["ratio"] < 4 else f"MISSED ({r['ratio']:.1f}x)"
        print(f"{r['step']:<36}{r['baseline'] / 2**20:>13.0f}{r['peak'] / 2**20:>10.0f}"
              f"{r['growth'] / 2**20:>12.0f}{r['ratio']:>12.1f}x{r['peak_ratio']:>10.1f}x"
              f"{r['seconds']:>9.2f}  {verdict}")
    if breakdown:
        print("\nwhere it goes (tracemalloc in this process: Python allocations only, "
              "not SQLite's or the sockets'; peak over the call / message size):")
        for label, peak in breakdown:
            print(f"  {label:<58}{peak / 2**20:>8.0f} MiB {peak / size:>6.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def bare_aiosmtpd(raw: bytes, size: int) -> dict:
    """The floor: a bare aiosmtpd server (ingest.py's, same data_size_limit) that
    accepts and discards, receiving the same message."""
    server = ingest.ServerProcess("bare")
    try:
        def send(message: bytes) -> None:
            with smtplib.SMTP(harness.LOOPBACK, server.port, timeout=300) as client:
                client.sendmail(SENDER, [RECIPIENT], message)

        send(harness.simple_message("Warm-up", 2000, RECIPIENT))
        meter = Meter(server.popen.pid, size)
        meter.measure("bare aiosmtpd: receive (floor)", lambda: send(raw))
        return meter.rows[0]
    finally:
        server.stop()


def where_it_goes(instance, raw: bytes) -> list[tuple[str, int]]:
    """Peak Python allocations of each step the processes take, run here."""
    import tracemalloc

    from app.domain import ingest, reading
    from app.extensions import db
    from app.mail import mime

    def traced(function) -> int:
        tracemalloc.start()
        try:
            function()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    stored = []

    def receive():
        stored.append(ingest.receive(raw, SENDER, [RECIPIENT], client_address="127.0.0.1"))
        db.session.commit()

    def fresh():
        """The stored message as a request finds it: nothing loaded yet."""
        db.session.expire_all()
        return db.session.get(Message, stored[0].id)

    def download():
        content = reading.download(fresh(), 1)[0]
        for _ in [content] if isinstance(content, bytes) else content:
            pass

    with instance.app().app_context():
        from app.models import Message

        steps = [
            ("mime.parse(raw) (routing facts; ingest.plan)", lambda: mime.parse(raw)),
            ("ingest.receive(raw) + commit (all of ccm smtp's DATA)", receive),
            ("reading.read(raw) (full parse, no part index)", lambda: reading.read(raw)),
            ("reading.read_message(stored) (the message page)",
             lambda: reading.read_message(fresh())),
            ("reading.download(stored, 1), streamed (the download)", download),
        ]
        found = [(label, traced(step)) for label, step in steps]
        db.session.remove()
    return found


if __name__ == "__main__":
    main()
