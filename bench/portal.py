"""Portal throughput and latency: inbox, message, search, against a static file.

The database gets ``--messages`` CCM messages (default 20,000), ``--inbox`` of them
(default 2,000) for one recipient, reader@partner.test, and the rest spread over other
recipients of the same tenant, written with bulk inserts copied from one message that
went through the real ingest path (bench/harness.py, bulk_load). ``ccm web`` (waitress,
its default 4 threads) serves it; the benchmark signs in with a real POST (CSRF token
from the page) and drives load from another process: ``wrk`` when installed, else
bench/harness.py's thread-pool client. For each URL, in the same run:

* ``--connections`` (default 8) keep-alive connections for ``--duration`` seconds
  (default 15): throughput and latency under load;
* one connection for ``--latency-duration`` seconds (default 5): the latency of one
  request with nothing else running (the service time).

The static file ``/static/css/ccm.css`` (served by Flask through the same stack, with
the session cookie, as a browser sends it) is the baseline. Goals: inbox p95 < 50 ms,
inbox throughput >= 0.5x static. Because the machine may be shared, the results also
give the web process's CPU time per request under load (from /proc, steadier than
rates) and the SQL statements each page runs (counted in this process, on the same
database, by a test client signed in as the same reader).

    .venv/bin/python bench/mailbox.py                  # 20,000 messages, 2,000 in the inbox
    .venv/bin/python bench/mailbox.py --full           # 100,000 / 2,000
    .venv/bin/python bench/mailbox.py --postgres --profile
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

READER = "reader@partner.test"
SUBJECTS = ["Quarterly figures", "Contract draft", "Board minutes", "Invoice",
            "Salary review", "Merger plan", "Audit report", "Holiday rota"]
SEARCH = "contract"
#: a recipient with a handful of messages among all the others (see plan_for)
SPARSE = "person1@partner1.test"

WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "socket_errors": %d, "non2xx": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max))
end
"""


def plan_for(total: int, inbox: int) -> harness.LoadPlan:
    """Newest first, one message every 30 seconds; the reader's spread evenly."""
    from app.clock import utcnow

    now = utcnow() - timedelta(minutes=1)
    every = max(1, total // inbox)
    others = max(1, (total - inbox) // 40)  # about 40 messages per other recipient
    owners, mine = [], 0
    for number in range(total):
        if number % every == 0 and mine < inbox:
            owners.append(READER)
            mine += 1
        else:
            owners.append(f"person{number % others}@partner{number % 7}.test")
    # A new subject every `every` messages: each recipient gets every subject in turn.
    subjects = [f"{SUBJECTS[(n // every) % len(SUBJECTS)]} {n}" for n in range(total)]
    received = [now - timedelta(seconds=30 * n) for n in range(total)]
    return harness.LoadPlan(owners, subjects, received, 30, harness.simple_message(
        "Quarterly figures", 2000, READER))


def run_wrk(url: str, cookie: str, connections: int, duration: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        out = subprocess.run(
            ["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(1, round(duration))}s",
             "--timeout", "30s", "-H", f"Cookie: {cookie}", "-s", script.name, url],
            capture_output=True, text=True, timeout=duration + 60)
    finally:
        os.unlink(script.name)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout}{out.stderr}")
    data = json.loads(line.removeprefix("RESULT "))
    seconds = data["duration_us"] / 1e6
    return {"requests": data["requests"], "rps": data["requests"] / seconds,
            "errors": data["socket_errors"], "non2xx": data["non2xx"],
            "p50_ms": data["p50_us"] / 1000, "p95_ms": data["p95_us"] / 1000,
            "p99_ms": data["p99_us"] / 1000, "max_ms": data["max_us"] / 1000}


def run_python(url: str, cookie: str, connections: int, duration: float) -> dict:
    out = subprocess.run(
        [harness.PYTHON, str(Path(harness.__file__)), "http-load", "--url", url,
         "--cookie", cookie, "--duration", str(duration), "--concurrency", str(connections)],
        capture_output=True, text=True, timeout=duration + 120)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    non2xx = sum(n for status, n in data["statuses"].items() if not status.startswith("2"))
    return {"requests": data["requests"], "rps": data["rps"], "errors": data["errors"],
            "non2xx": non2xx, "p50_ms": data["p50_ms"], "p95_ms": data["p95_ms"],
            "p99_ms": data["p99_ms"], "max_ms": data["max_ms"]}


def explain(instance: harness.Instance, query: str = "", email: str = READER) -> None:
    """The SQL of mailbox.inbox() for ``email``, its plan, and its time, run here."""
    from sqlalchemy import event, select

    from app.domain import mailbox
    from app.extensions import db
    from app.models import User

    with instance.app().app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        print(f"  {email}'s inbox{f' searching {query!r}' if query else ''}:")
        seen: list[tuple[str, object]] = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            seen.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            mailbox.inbox(user, query=query)
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        prefix = "EXPLAIN QUERY PLAN " if db.engine.dialect.name == "sqlite" else \
            "EXPLAIN (ANALYZE, BUFFERS) "
        for statement, parameters in seen:
            if "FROM recipient" not in statement:
                continue
            print(f"  -- {' '.join(statement.split())[:160]}...")
            raw = db.session.connection().connection.dbapi_connection
            cursor = raw.cursor()
            cursor.execute(prefix + statement, parameters)
            for row in cursor.fetchall():
                print(f"     {row[-1] if len(row) > 1 else row[0]}")
            t0 = time.perf_counter()
            for _ in range(20):
                cursor.execute(statement, parameters)
                cursor.fetchall()
            print(f"     ({(time.perf_counter() - t0) / 20 * 1000:.2f} ms a run)")
            cursor.close()
        db.session.remove()


def statements_per_request(instance: harness.Instance, paths: dict[str, str],
                           email: str = READER) -> dict[str, list[str]]:
    """The SQL statements each page runs, counted in this process on the same database:
    a test client signs in as ``email`` and asks for each path twice, counting the second
    time (a reload: what the load runs see after their first request)."""
    from sqlalchemy import event

    from app.extensions import db

    app = instance.app()
    client = app.test_client()
    form = client.get("/t/acme/sign-in").get_data(as_text=True)
    client.post("/t/acme/sign-in", data={"csrf_token": harness._CSRF.search(form).group(1),
                                         "email": email, "password": harness.PASSWORD})
    with app.app_context():
        engine = db.engine
    counted: dict[str, list[str]] = {}
    for name, path in paths.items():
        client.get(path).close()
        seen: list[str] = []

        def capture(conn, cursor, statement, parameters, context, executemany, seen=seen):
            seen.append(" ".join(statement.split()))

        event.listen(engine, "before_cursor_execute", capture)
        try:
            client.get(path).close()
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        counted[name] = seen
    return counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--inbox", type=int, default=2000)
    parser.add_argument("--full", action="store_true", help="100,000 messages, 2,000 inbox")
    parser.add_argument("--duration", type=float, default=15, help="seconds per URL")
    parser.add_argument("--latency-duration", type=float, default=5,
                        help="seconds per URL with one connection")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, help="ccm web --threads (default its own)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL, not SQLite")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the web process during an extra inbox run")
    parser.add_argument("--explain", action="store_true",
                        help="print the inbox queries' plans and times (run here)")
    parser.add_argument("--json", help="write the figures to this file as JSON")
    args = parser.parse_args()
    if args.full:
        args.messages, args.inbox = 100000, 2000

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    load = run_wrk if client == "wrk" else run_python

    with harness.Instance("portal", postgres=args.postgres) as instance:
        harness.banner(f"portal on {instance.database}: {args.messages} messages, "
                       f"{args.inbox} in {READER}'s inbox; client {client}, "
                       f"{args.connections} connections x {args.duration:.0f} s per URL; "
                       f"{harness.machine()}")
        instance.import_config(harness.tenant_yaml(ccm=True))
        started = time.monotonic()
        counts = harness.bulk_load(instance, plan_for(args.messages, args.inbox))
        print(f"  loaded in {time.monotonic() - started:.1f} s: {counts}")
        harness.set_password(instance, READER)
        newest = instance.sql(
            "SELECT m.public_id, m.subject FROM message m JOIN recipient r "
            "ON r.message_id = m.id JOIN users u ON u.id = r.user_id "
            "WHERE u.email = :email ORDER BY m.received_at DESC LIMIT 1", {"email": READER})[0]
        in_inbox = instance.sql(
            "SELECT count(*) FROM recipient r JOIN users u ON u.id = r.user_id "
            "WHERE u.email = :email", {"email": READER})[0][0]

        web = instance.web(threads=args.threads)
        browser = harness.Browser(instance.http_port)
        browser.sign_in(READER)
        base = f"http://{harness.LOOPBACK}:{instance.http_port}"
        urls = {
            "static": "/static/css/ccm.css",
            "inbox": "/inbox/",
            "message": f"/inbox/{newest.public_id}",
            "search": f"/inbox/?q={SEARCH}",
        }
        # Each page must really be the page, not a redirect to the sign-in form.
        for name, path in urls.items():
            status, _, body = browser.get(path)
            text = body.decode(errors="replace")
            expected = {"inbox": newest.subject, "search": "Contract draft",
                        "message": "Quarterly figures", "static": "{"}[name]
            if status != 200 or expected not in text:
                raise RuntimeError(f"{path}: status {status}, {expected!r} not in the page")
        print(f"  {READER} has {in_inbox} messages; pages checked")
        statements = statements_per_request(instance, urls)
        for name, seen in statements.items():
            print(f"  {name}: {len(seen)} SQL statements a request: "
                  + "; ".join(x[:60] for x in seen))
        if args.explain:
            explain(instance)
            explain(instance, SEARCH)
            explain(instance, email=SPARSE)

        results = {}
        # The same file without the session cookie: what the session check costs.
        urls["static-anon"] = urls["static"]
        for name, path in urls.items():
            cookie = "" if name == "static-anon" else browser.cookie_header
            cpu_before = harness.cpu_seconds(web.pid)
            loaded = load(base + path, cookie, args.connections, args.duration)
            # The server's own CPU per request: steadier than rates on a shared machine.
            loaded["cpu_ms"] = ((harness.cpu_seconds(web.pid) - cpu_before) * 1000
                                / max(1, loaded["requests"]))
            single = load(base + path, cookie, 1, args.latency_duration)
            results[name] = {"loaded": loaded, "single": single}
            print(f"  {name:<11} {loaded['rps']:7.1f} req/s  p50 {loaded['p50_ms']:6.1f}  "
                  f"p95 {loaded['p95_ms']:6.1f}  p99 {loaded['p99_ms']:6.1f} ms  "
                  f"(1 connection: {single['rps']:6.1f} req/s, p50 {single['p50_ms']:5.1f}, "
                  f"p95 {single['p95_ms']:5.1f} ms)  server CPU {loaded['cpu_ms']:.2f} ms a "
                  f"request, errors {loaded['errors']}, "
                  f"non-2xx {loaded['non2xx'] + single['non2xx']}", flush=True)
        rss = harness.peak_rss(web.pid)

        if args.profile:
            recorder = harness.record_profile(web.pid, "portal-inbox", args.duration)
            if recorder is not None:
                time.sleep(0.5)
                load(base + urls["inbox"], browser.cookie_header, args.connections,
                     args.duration - 1)
                recorder.wait()
                print(harness.summarize_profile("portal-inbox"))
                for label, frame in (("executing SQL (cursor.execute)", "do_execute"),
                                     ("rendering templates", "render_template"),
                                     ("loading the session's user", "load_user")):
                    share = harness.profile_share("portal-inbox", frame)
                    print(f"  {share:6.1%}  {label}")

    harness.banner("results")
    static = results["static"]["loaded"]
    print(f"{'URL':<12}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'vs static':>11}"
          f"{'1-conn p50':>12}{'1-conn p95':>12}{'CPU ms':>8}{'SQL':>5}")
    for name, result in results.items():
        loaded, single = result["loaded"], result["single"]
        print(f"{name:<12}{loaded['rps']:>9.1f}{loaded['p50_ms']:>9.1f}"
              f"{loaded['p95_ms']:>9.1f}{loaded['p99_ms']:>9.1f}"
              f"{loaded['rps'] / static['rps']:>10.2f}x"
              f"{single['p50_ms']:>12.1f}{single['p95_ms']:>12.1f}"
              f"{loaded['cpu_ms']:>8.2f}{len(statements.get(name, [])):>5}")
    print("(CPU ms: the web process's CPU time per request under load; SQL: statements a "
          "request, counted in-process)")
    inbox = results["inbox"]
    ratio = inbox["loaded"]["rps"] / static["rps"]
    print(f"\ninbox/static throughput: {ratio:.2f}x (goal >= 0.5x: "
          f"{'met' if ratio >= 0.5 else 'MISSED'})")
    for label, figure in (("under load", inbox["loaded"]["p95_ms"]),
                          ("one connection", inbox["single"]["p95_ms"])):
        print(f"inbox p95 {label}: {figure:.1f} ms (goal < 50 ms: "
              f"{'met' if figure < 50 else f'MISSED by {figure - 50:.1f} ms'})")
    print(f"ccm web peak RSS: {rss / 2**20:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
