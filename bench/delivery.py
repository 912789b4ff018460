"""End to end: messages in by SMTP, out to a sink, CCM beside Postfix relaying the same.

The same N messages (10 KB, to ``--rcpts`` recipients at one domain) go over 4 SMTP
connections into each, and the clock stops when the sink (tests/servers.py's SmtpSink,
in a process of its own) holds them all:

* Postfix, in a throwaway instance relaying everything to the sink (bench/ingest.py's);
* CCM: ``ccm smtp`` and ``ccm worker`` (CCM_WORKER_INTERVAL=1), the recipients routed out
  by CCM_OUTBOUND=smtp:// the sink (ordinary delivery, no policy);
* CCM delivery alone: N messages queued with no worker running, then ``ccm worker``
  started; timed from its start to the sink holding them all, and (the rate of
  delivering, start-up left out) from the sink's first message to its last;
* CCM with every recipient routed by CCM: the notifications' rate at the sink, reported
  beside the others (a recipient's first one brings a password notification too).

    .venv/bin/python bench/delivery.py               # 500 messages, SQLite
    .venv/bin/python bench/delivery.py --postgres --rcpts 3
    PY_SPY=.venv/bin/py-spy .venv/bin/python bench/delivery.py --profile gil --only-ordinary

CPU a message is each CCM process's CPU time over the messages it handled (for "delivery
alone", the worker's CPU from the moment it is ready: its cost a message).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import ingest


def wait_for(sink: ingest.ServerProcess, count: int, seconds: float = 600) -> float:
    """Wait until the sink holds ``count`` messages; when it did (perf_counter)."""
    deadline = time.monotonic() + seconds
    while sink.taken() < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the sink holds {sink.taken()} of {count}")
        time.sleep(0.02)
    return time.perf_counter()


def _record_profile(pid: int, name: str, mode: str):
    """py-spy on ``pid``: ``wall`` counts waiting threads too (``--idle``: where a
    delivery's time goes), ``gil`` only the thread holding the GIL (where the CPU goes)."""
    spy = harness.py_spy()
    if spy is None:
        print("  (py-spy not found: set PY_SPY=/path/to/py-spy for a profile)")
        return None
    harness.PROFILES.mkdir(exist_ok=True)
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw",
         "--rate", os.environ.get("CCM_BENCH_SPY_RATE", "200"),
         "--idle" if mode == "wall" else "--gil",
         "--output", str(harness.PROFILES / f"{name}.txt"), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_ccm(args, messages, rcpts, *, ccm_route: bool) -> dict:
    sink = ingest.ServerProcess("sink")
    try:
        env = {"CCM_OUTBOUND": f"smtp://{harness.LOOPBACK}:{sink.port}",
               "CCM_WORKER_INTERVAL": "1", "CCM_MAX_MESSAGE_BYTES": ingest.DATA_SIZE_LIMIT,
               **dict(setting.split("=", 1) for setting in args.set)}
        with harness.Instance("delivery", postgres=args.postgres, env_extra=env) as instance:
            instance.import_config(harness.tenant_yaml(ccm=ccm_route))
            smtp = instance.smtp()
            worker = instance.worker()
            # their start-up is not counted: what a message costs is
            smtp_cpu, worker_cpu = smtp.cpu_seconds(), harness.cpu_seconds(worker.pid)
            # every message one item a recipient, or (CCM) one notification a recipient
            # plus a password notification for each recipient's first
            per_message = len(rcpts)
            expected = len(messages) * per_message + (len(rcpts) if ccm_route else 0)
            started = time.perf_counter()
            sent = ingest.send_all(instance.smtp_port, messages, rcpts, args.connections,
                                   "ccm")
            done = wait_for(sink, expected)
            result = {"end_to_end": len(messages) / (done - started), "sent": sent.sent,
                      "smtp_cpu": smtp.cpu_seconds() - smtp_cpu,
                      "worker_cpu": harness.cpu_seconds(worker.pid) - worker_cpu}
            if not ccm_route:
                worker.stop()
                before = sink.taken()
                ingest.send_all(instance.smtp_port, messages, rcpts, args.connections,
                                "ccm queued")
                started = time.perf_counter()
                worker = instance.worker()
                started_cpu = harness.cpu_seconds(worker.pid)  # its start-up, not counted
                name = f"delivery-worker-{instance.database.lower()}"
                recorder = _record_profile(worker.pid, name, args.profile) \
                    if args.profile else None
                first = wait_for(sink, before + 1)
                done = wait_for(sink, before + len(messages) * per_message)
                harness.stop_profile(recorder)
                result["delivery_alone"] = len(messages) / (done - started)
                # the worker's start-up and first tick left out: delivering, only
                result["delivering"] = (len(messages) - 1) / max(done - first, 1e-6)
                result["alone_cpu"] = harness.cpu_seconds(worker.pid) - started_cpu
                if args.profile:
                    result["profile"] = harness.summarize_profile(name, top=40)
            return result
    finally:
        sink.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rcpts", type=int, default=1)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="CCM_X=VALUE",
                        help="a setting for the CCM processes (repeat)")
    parser.add_argument("--only-ordinary", action="store_true",
                        help="skip the run with every recipient routed by CCM")
    parser.add_argument("--no-postfix", action="store_true")
    parser.add_argument("--profile", choices=("wall", "gil"),
                        help="py-spy the worker while it delivers alone ($PY_SPY): wall "
                             "time (waiting threads counted) or the thread holding the GIL")
    args = parser.parse_args()

    rcpts = [f"r{n}@partner.test" for n in range(args.rcpts)]
    messages = ingest.build_messages(args.messages, 10 * 1024, 0, rcpts, "delivery")
    warm_up = ingest.build_messages(ingest.WARM_UP, 10 * 1024, 0, rcpts, "warm")
    database = "PostgreSQL" if args.postgres else "SQLite"
    harness.banner(f"end to end on {database}: {args.messages} x 10 KB to {args.rcpts} "
                   f"recipient(s), {args.connections} connections; {harness.machine()}")

    postfix = ingest.run_postfix(args, messages, warm_up, rcpts) \
        if ingest.postfix_available() and not args.no_postfix else None
    postfix_rate = None
    if postfix is not None:
        postfix_rate = float(postfix.note.split("(")[-1].split()[0])
        print(f"Postfix relaying to the sink: {postfix_rate:.0f} msg/s end to end")
    ordinary = run_ccm(args, messages, rcpts, ccm_route=False)
    secure = None if args.only_ordinary else run_ccm(args, messages, rcpts, ccm_route=True)

    def ratio(rate: float) -> str:
        return f" ({rate / postfix_rate:.2f}x Postfix)" if postfix_rate else ""

    def per_message(seconds: float) -> str:
        return f"{seconds / args.messages * 1000:.1f} ms"

    print(f"CCM, ordinary delivery, end to end: {ordinary['end_to_end']:.0f} msg/s"
          f"{ratio(ordinary['end_to_end'])}; CPU a message: ccm smtp "
          f"{per_message(ordinary['smtp_cpu'])}, ccm worker "
          f"{per_message(ordinary['worker_cpu'])}")
    print(f"CCM, delivery alone (queued first): {ordinary['delivery_alone']:.0f} msg/s"
          f"{ratio(ordinary['delivery_alone'])}, from its first message to its last "
          f"{ordinary['delivering']:.0f} msg/s{ratio(ordinary['delivering'])}; CPU a "
          f"message: ccm worker {per_message(ordinary['alone_cpu'])}")
    if secure is not None:
        print(f"CCM, every recipient by CCM, notifications at the sink: "
              f"{secure['end_to_end']:.0f} messages/s end to end"
              f"{ratio(secure['end_to_end'])}")
    print(f"load average at the end: {harness.machine()}")
    if "profile" in ordinary:
        print(ordinary["profile"])


if __name__ == "__main__":
    main()
