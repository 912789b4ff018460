"""SMTP ingest throughput: ``ccm smtp`` against a bare aiosmtpd server and Postfix.

N messages go over K concurrent SMTP connections (one thread and one smtplib connection
each, many messages per connection) into ``ccm smtp``, which routes every recipient to
CCM (a route policy ``to: "*"``), so each message is parsed, routed, stored with its
recipient rows and delivery events, and its notification queued before the 250. The
same messages, from the same client, in the same run, go to:

* a bare aiosmtpd server that accepts and discards (same ``data_size_limit``): the
  ceiling for anything built on aiosmtpd;
* Postfix, when installed, in a throwaway instance of its own under /tmp listening on
  a loopback port and relaying everything to an SmtpSink (tests/servers.py).

Every server runs in a process of its own; the clients run here. Timing starts at the
first MAIL FROM and ends at the last 250 (a warm-up of 20 messages is not counted).

    .venv/bin/python bench/ingest.py                       # 2000 x 2 KB, 4 connections
    .venv/bin/python bench/ingest.py --size 10k --postgres
    .venv/bin/python bench/ingest.py --mix 0.05            # 5% carry a 1 MB attachment
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

SENDER = "alice@acme.test"
DATA_SIZE_LIMIT = 52428800  # CCM_MAX_MESSAGE_BYTES's default: the same for every server
WARM_UP = 20


def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1024, "m": 1024 * 1024}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def build_messages(count: int, size: int, mix: float, rcpts: list[str],
                   tag: str) -> list[bytes]:
    """``count`` messages of about ``size`` bytes; a ``mix`` fraction of them (spread
    evenly) also carries a 1 MB attachment. Each has a unique Message-ID."""
    attachment = os.urandom(1024 * 1024)
    line = "The quick brown fox jumps over the lazy dog, again and again. 0123456789\n"
    every = round(1 / mix) if mix > 0 else 0
    messages = []
    for number in range(count):
        message = EmailMessage()
        message["From"] = f"Alice <{SENDER}>"
        message["To"] = ", ".join(rcpts)
        message["Subject"] = f"Bench message {number} of {count}"
        message["Message-ID"] = f"<{tag}-{number}-{uuid.uuid4().hex}@acme.test>"
        message["Date"] = "Mon, 30 Nov 2026 09:00:00 +0000"
        body = line * max(1, (size - 400) // len(line))
        message.set_content(body)
        if every and number % every == 0:
            message.add_attachment(attachment, maintype="application", subtype="octet-stream",
                                   filename="figures.bin")
        messages.append(message.as_bytes(policy=SMTP))
    return messages


@dataclass
class RunResult:
    target: str
    sent: int
    refused: int
    seconds: float
    latencies_ms: list[float]
    bytes: int
    note: str = ""

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def send_all(port: int, messages: list[bytes], rcpts: list[str], connections: int,
             target: str, timeout: float = 600) -> RunResult:
    """Send ``messages`` over ``connections`` connections at once; time to the last 250."""
    index = [0]
    lock = threading.Lock()
    latencies: list[float] = []
    refused: list[str] = []
    start_gate = threading.Barrier(connections + 1)
    deadline = time.monotonic() + timeout

    def run() -> None:
        client = smtplib.SMTP(harness.LOOPBACK, port, timeout=120)
        client.ehlo("client.bench.test")
        mine = []
        start_gate.wait()
        while time.monotonic() < deadline:
            with lock:
                number = index[0]
                index[0] += 1
            if number >= len(messages):
                break
            t0 = time.perf_counter()
            try:
                client.sendmail(SENDER, rcpts, messages[number])
            except smtplib.SMTPException as error:
                with lock:
                    refused.append(str(error))
                client.close()
                client = smtplib.SMTP(harness.LOOPBACK, port, timeout=120)
                client.ehlo("client.bench.test")
                continue
            mine.append((time.perf_counter() - t0) * 1000)
        try:
            client.quit()
        except smtplib.SMTPException:
            client.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(connections)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    size = sum(len(m) for m in messages)
    if refused:
        print(f"  {target}: {len(refused)} refused, e.g. {refused[0]}")
    return RunResult(target, len(latencies), len(refused), seconds, latencies, size)


# --- the servers ---------------------------------------------------------------------


def serve(kind: str, port: int, status_file: str) -> None:
    """Run as a subprocess: ``bare`` accepts and discards, ``sink`` is tests' SmtpSink.
    Writes the number of messages taken to ``status_file`` five times a second."""
    count = [0]
    if kind == "bare":
        from aiosmtpd.controller import Controller

        class Discard:
            async def handle_DATA(self, server, session, envelope):
                count[0] += 1
                return "250 2.0.0 OK"

        controller = Controller(Discard(), hostname=harness.LOOPBACK, port=port,
                                data_size_limit=DATA_SIZE_LIMIT, enable_SMTPUTF8=True,
                                server_hostname="bare.bench.test")
        controller.start()
    else:
        from servers import SmtpSink

        sink = SmtpSink(port=port).start()
    while True:
        taken = count[0] if kind == "bare" else len(sink.messages)
        Path(status_file).write_text(str(taken))
        time.sleep(0.2)


class ServerProcess:
    def __init__(self, kind: str):
        self.kind = kind
        self.port = harness.free_port()
        with tempfile.NamedTemporaryFile(prefix=f"ccm-bench-{kind}-", delete=False) as f:
            self.status = f.name
        self.popen = subprocess.Popen(
            [harness.PYTHON, __file__, "--serve", kind, "--serve-port", str(self.port),
             "--status-file", self.status])
        harness.wait_for_port(self.port, 30, self.popen)

    def taken(self) -> int:
        try:
            return int(Path(self.status).read_text() or 0)
        except (OSError, ValueError):
            return 0

    def stop(self) -> None:
        self.popen.kill()
        self.popen.wait()
        if os.path.exists(self.status):
            os.unlink(self.status)


POSTFIX = "/usr/sbin/postfix"
POSTFIX_SERVICES = [
    # name, type, private, unpriv, chroot, wakeup, maxproc, command
    "pickup unix n - n 60 1 pickup",
    "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "tlsmgr unix - - n 1000? 1 tlsmgr",
    "rewrite unix - - n - - trivial-rewrite",
    "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce",
    "trace unix - - n - 0 bounce",
    "verify unix - - n - 1 verify",
    "flush unix n - n 1000? 0 flush",
    "proxymap unix - - n - - proxymap",
    "proxywrite unix - - n - 1 proxymap",
    "smtp unix - - n - - smtp",
    "relay unix - - n - - smtp",
    "showq unix n - n - - showq",
    "error unix - - n - - error",
    "retry unix - - n - - error",
    "discard unix - - n - - discard",
    "anvil unix - - n - 1 anvil",
    "scache unix - - n - 1 scache",
    "postlog unix-dgram n - n - 1 postlogd",
]


class Postfix:
    """A throwaway Postfix: its own config_directory, queue and data under /tmp, an
    smtpd on a loopback port, everything relayed to ``relay_port``."""

    def __init__(self, relay_port: int):
        self.port = harness.free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ccm-bench-postfix-"))
        self.root.chmod(0o755)  # Postfix's daemons run as the postfix user
        etc, queue, data = (self.root / name for name in ("etc", "queue", "data"))
        for folder in (etc, queue, data):
            folder.mkdir()
        shutil.chown(data, "postfix")
        self.log = self.root / "postfix.log"
        (etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{relay_port}
message_size_limit = {DATA_SIZE_LIMIT}
smtpd_peername_lookup = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file_prefixes = {self.root}
maillog_file = {self.log}
syslog_name = postfix-bench
""")
        (etc / "master.cf").write_text(
            f"{harness.LOOPBACK}:{self.port} inet n - n - - smtpd\n"
            + "\n".join(POSTFIX_SERVICES) + "\n")
        self.etc = etc
        self.queue = queue
        started = subprocess.run([POSTFIX, "-c", str(etc), "start"], capture_output=True,
                                 text=True, timeout=60)
        if started.returncode != 0:
            raise RuntimeError(f"postfix start failed: {started.stdout}{started.stderr}")
        harness.wait_for_port(self.port, 30)

    def queued(self) -> int:
        """Messages still in Postfix's queue (incoming, active, deferred, hold)."""
        total = 0
        for name in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(self.queue / name):
                total += len(files)
        return total

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.etc), "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def postfix_available() -> bool:
    return os.path.exists(POSTFIX) and os.geteuid() == 0


# --- the runs --------------------------------------------------------------------------


def run_ccm(args, messages, warm_up, rcpts, postgres: bool, processes: int = 0) -> RunResult:
    """``ccm smtp --processes N``; 0: as an operator starts it, one process a core."""
    settings = {"CCM_MAX_MESSAGE_BYTES": DATA_SIZE_LIMIT}
    if args.store_threads:
        settings["CCM_SMTP_STORE_THREADS"] = str(args.store_threads)
    with harness.Instance("ingest", postgres=postgres, env_extra=settings) as instance:
        instance.import_config(harness.tenant_yaml(ccm=True))
        smtp = instance.smtp(processes)
        servers = smtp.tree()
        label = (f"ccm smtp ({instance.database}) x{len(servers)}"
                 + (" (default)" if processes == 0 else ""))
        warm = send_all(instance.smtp_port, warm_up, rcpts, args.connections,
                        f"{label} warm-up")
        cpu = smtp.cpu_seconds()
        result = send_all(instance.smtp_port, messages, rcpts, args.connections, label)
        cpu = smtp.cpu_seconds() - cpu
        rss = max(harness.peak_rss(pid) for pid in servers)
        stored = instance.sql("SELECT count(*) FROM message")[0][0]
        rows = instance.sql("SELECT count(*) FROM recipient")[0][0]
        queued = instance.sql("SELECT count(*) FROM outbound_item")[0][0]
        expected = result.sent + warm.sent  # acknowledged with 250
        result.note = (f"stored {stored} messages for {expected} acknowledged "
                       f"({warm.refused} of the warm-up refused), {rows} recipient rows, "
                       f"{queued} queued notifications; server CPU {cpu:.1f} s "
                       f"({cpu / len(messages) * 1000:.1f} ms a message, "
                       f"{cpu / result.seconds:.0%} of one core in all); "
                       f"peak RSS {rss / 2**20:.0f} MiB")
        if stored != expected:
            result.note += "  <-- MISMATCH"
        if args.profile:
            profile(instance, smtp, rcpts, args, f"ingest-smtp-{instance.database.lower()}")
        return result


def profile(instance, smtp, rcpts, args, name: str) -> None:
    """Sample ``ccm smtp`` with py-spy while it takes as many more of the same messages
    as the run did (at least 600)."""
    more = build_messages(max(600, args.messages), parse_size(args.size), args.mix, rcpts,
                          "profile")
    recorder = harness.record_profile(smtp.pid, name, None, gil=args.profile == "gil")
    if recorder is None:
        return
    time.sleep(1)
    try:
        send_all(instance.smtp_port, more, rcpts, args.connections, "profile")
    finally:
        harness.stop_profile(recorder)
    print(harness.summarize_profile(name))


def run_server(kind: str, args, messages, warm_up, rcpts) -> RunResult:
    server = ServerProcess(kind)
    try:
        send_all(server.port, warm_up, rcpts, args.connections, kind)
        cpu = harness.cpu_seconds(server.popen.pid)
        result = send_all(server.port, messages, rcpts, args.connections,
                          "bare aiosmtpd (discard)")
        cpu = harness.cpu_seconds(server.popen.pid) - cpu
        time.sleep(0.5)  # the server writes its count five times a second
        result.note = (f"server counted {server.taken() - len(warm_up)} messages; server CPU "
                       f"{cpu:.2f} s ({cpu / len(messages) * 1000:.2f} ms a message)")
        return result
    finally:
        server.stop()


def run_postfix(args, messages, warm_up, rcpts) -> RunResult | None:
    sink = ServerProcess("sink")
    postfix = None
    try:
        postfix = Postfix(sink.port)
        send_all(postfix.port, warm_up, rcpts, args.connections, "postfix")
        deadline = time.monotonic() + 60
        while sink.taken() < len(warm_up) and time.monotonic() < deadline:
            time.sleep(0.1)
        base = sink.taken()
        started = time.perf_counter()
        result = send_all(postfix.port, messages, rcpts, args.connections,
                          "Postfix (queue to disk)")
        deadline = time.monotonic() + 300
        while sink.taken() - base < result.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        relayed = sink.taken() - base
        end_to_end = time.perf_counter() - started
        result.note = (f"relayed {relayed}/{result.sent} to the sink, "
                       f"all relayed after {end_to_end:.1f} s "
                       f"({relayed / end_to_end:.0f} msg/s end to end)")
        return result
    except (RuntimeError, TimeoutError, OSError) as error:
        print(f"postfix: not available ({error})")
        return None
    finally:
        if postfix is not None:
            postfix.stop()
        sink.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--messages", type=int, default=2000)
    parser.add_argument("-k", "--connections", type=int, default=4)
    parser.add_argument("--size", default="2k", help="body size, e.g. 2k, 10k (default 2k)")
    parser.add_argument("--mix", type=float, default=0.0,
                        help="fraction of messages that also carry a 1 MB attachment")
    parser.add_argument("--rcpt", action="append",
                        help="recipient (repeat); default pat@partner.test, outside the "
                             "tenant's domain")
    parser.add_argument("--postgres", action="store_true",
                        help="also run ccm smtp on PostgreSQL (database ccm_bench)")
    parser.add_argument("--smtp-processes", type=int, nargs="+", default=[0], metavar="N",
                        help="run `ccm smtp --processes N` for each N on each database "
                             "(default 0: its own default, one process a core)")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    parser.add_argument("--store-threads", type=int, metavar="N",
                        help="CCM_SMTP_STORE_THREADS for ccm smtp on PostgreSQL (default "
                             "its own)")
    parser.add_argument("--no-postfix", action="store_true")
    parser.add_argument("--profile", nargs="?", const="all", choices=("all", "gil"),
                        help="also record a py-spy profile of ccm smtp (gil: only the "
                             "thread holding the GIL)")
    parser.add_argument("--json", help="write the figures to this file as JSON")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--serve-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--status-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.serve_port, args.status_file)
        return

    rcpts = args.rcpt or ["pat@partner.test"]
    size = parse_size(args.size)
    messages = build_messages(args.messages, size, args.mix, rcpts, "bench")
    warm_up = build_messages(WARM_UP, size, 0, rcpts, "warmup")
    average = sum(map(len, messages)) / len(messages)
    harness.banner(f"ingest: {args.messages} messages, {average / 1024:.1f} KiB on average "
                   f"({args.mix:.0%} with a 1 MB attachment), {args.connections} connections, "
                   f"recipients {', '.join(rcpts)}; {harness.machine()}")

    results: list[RunResult] = []
    results.append(run_server("bare", args, messages, warm_up, rcpts))
    for postgres in [False] * (not args.no_sqlite) + [True] * args.postgres:
        for processes in args.smtp_processes:
            results.append(run_ccm(args, messages, warm_up, rcpts, postgres=postgres,
                                   processes=processes))
    if args.no_postfix:
        print("postfix: skipped (--no-postfix)")
    elif postfix_available():
        if (found := run_postfix(args, messages, warm_up, rcpts)) is not None:
            results.append(found)
    else:
        print("postfix: not available (no /usr/sbin/postfix, or not root)")

    harness.banner("results")
    bare = results[0]
    postfix = next((r for r in results if r.target.startswith("Postfix")), None)
    print(f"{'target':<36}{'sent':>6}{'refused':>8}{'seconds':>9}{'msg/s':>9}{'MB/s':>7}"
          f"{'p50 ms':>8}{'p99 ms':>8}{'vs bare':>9}{'vs postfix':>11}")
    for r in results:
        vs_postfix = f"{r.rate / postfix.rate:.2f}x" if postfix else "-"
        print(f"{r.target:<36}{r.sent:>6}{r.refused:>8}{r.seconds:>9.2f}{r.rate:>9.1f}"
              f"{r.bytes / r.seconds / 1e6:>7.1f}"
              f"{harness.percentile(r.latencies_ms, 50):>8.1f}"
              f"{harness.percentile(r.latencies_ms, 99):>8.1f}"
              f"{r.rate / bare.rate:>8.2f}x{vs_postfix:>11}")
    for r in results:
        if r.note:
            print(f"  {r.target}: {r.note}")
    if args.json:
        Path(args.json).write_text(json.dumps([
            {"target": r.target, "sent": r.sent, "refused": r.refused, "seconds": r.seconds,
             "rate": r.rate, "p50_ms": harness.percentile(r.latencies_ms, 50),
             "p99_ms": harness.percentile(r.latencies_ms, 99), "note": r.note}
            for r in results], indent=2))


if __name__ == "__main__":
    main()
