"""CPU per message of the DATA transaction, in this process, without SMTP or threads.

Runs ``ingest.receive`` + commit N times on a fresh instance (the same tenant and route
policy as ``ingest.py``) and prints CPU milliseconds a message, with the bare parse of
the same message as the baseline measured in the same run; ``--profile`` prints the
top functions by cumulative time (cProfile) and the Python function calls a message
(steadier than CPU time on a loaded machine). ``--group N`` stores the messages N at a
time through the ingress's group commit (``GroupCommit._store``, one transaction a
group), as ``ccm smtp`` does when N messages arrive together.

    .venv/bin/python bench/ingest_cpu.py -n 500 [--postgres] [--profile] [--group 4]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--group", type=int, default=0, metavar="N",
                        help="store N messages a transaction by the group commit")
    args = parser.parse_args()

    from app.domain import ingest
    from app.extensions import db
    from app.smtp.group_commit import GroupCommit, Job

    with harness.Instance("ingest-cpu", postgres=args.postgres) as instance:
        instance.import_config(harness.tenant_yaml(ccm=True))
        app = instance.app()
        messages = [harness.simple_message(subject=f"Figures {n}") for n in range(args.n + 20)]

        def store(raw: bytes) -> None:
            with app.app_context():
                ingest.receive(raw, "alice@acme.test", ["pat@partner.test"],
                               client_address="127.0.0.1")
                db.session.commit()
                db.session.remove()

        def store_groups(raws: list[bytes]) -> None:
            grouped = GroupCommit(app)
            for start in range(0, len(raws), args.group):
                outcomes = grouped._store([
                    Job((raw, "alice@acme.test", ["pat@partner.test"],
                         {"client_address": "127.0.0.1"}))
                    for raw in raws[start:start + args.group]])
                assert outcomes == [None] * len(outcomes), outcomes

        for raw in messages[:20]:  # the first creates the account; warm caches
            store(raw)
        started = time.process_time()
        for raw in messages[20:]:
            message_from_bytes(raw, policy=policy.default).get_body()
        parse_ms = (time.process_time() - started) * 1000 / args.n
        profiler = cProfile.Profile() if args.profile else None
        started = time.process_time()
        if profiler:
            profiler.enable()
        if args.group:
            store_groups(messages[20:])
        else:
            for raw in messages[20:]:
                store(raw)
        if profiler:
            profiler.disable()
        store_ms = (time.process_time() - started) * 1000 / args.n
        database = "PostgreSQL" if args.postgres else "SQLite"
        how = f"groups of {args.group}" if args.group else "one a transaction"
        print(f"receive + commit on {database}, {how}: {store_ms:.2f} ms CPU a message "
              f"({args.n} messages); parsing alone: {parse_ms:.2f} ms "
              f"({store_ms / parse_ms:.1f}x)")
        if profiler:
            stats = pstats.Stats(profiler)
            # steadier than seconds on a shared machine: the same work, the same count
            print(f"Python function calls a message: {stats.total_calls / args.n:,.0f}")
            stats.sort_stats("cumulative")
            stats.print_stats(40)
            stats.print_callers("_fire_loader_callables|_autoflush")


if __name__ == "__main__":
    main()
