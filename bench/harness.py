"""What every benchmark shares: a throwaway CCM instance, its processes, an HTTP client.

An :class:`Instance` is a temporary instance folder (``CCM_INSTANCE_PATH``) with its own
database: a SQLite file in the folder, or the PostgreSQL database ``ccm_bench``, dropped
and created again for each run. Its processes (``ccm smtp``, ``ccm web``, ``ccm worker``)
are the real console script, started as subprocesses on free loopback ports and killed
in ``close()``. Setup that would be slow through the front door (thousands of rows) is
done in this process with the application's own models (:meth:`Instance.app`).

Run as a script, this module is also the HTTP load client used where ``wrk`` is not
installed, and the latency probe of bench/expiry.py::

    python bench/harness.py http-load --url URL --cookie C --duration 15 --concurrency 8
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
PYTHON = str(VENV / "python")
CCM = str(VENV / "ccm")
LOOPBACK = "127.0.0.1"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
#: CCM_BENCH_PG_DATABASE lets two checkouts benchmark on PostgreSQL without clashing
PG_DATABASE = os.environ.get("CCM_BENCH_PG_DATABASE", "ccm_bench")
#: a password the portal's rules accept (12+ characters, not common)
PASSWORD = "bench horse battery staple"
#: argon2id at its cheapest, for accounts the benchmark creates itself
CHEAP_HASH = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}

for path in (str(ROOT), str(ROOT / "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None,
                  host: str = LOOPBACK) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args} exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def peak_rss(pid: int) -> int:
    """VmHWM of ``pid`` in bytes: its peak resident set since start (or the last reset)."""
    return _status_kib(pid, "VmHWM") * 1024


def current_rss(pid: int) -> int:
    return _status_kib(pid, "VmRSS") * 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, parents first."""
    found, place = [pid], 0
    while place < len(found):
        for task in Path(f"/proc/{found[place]}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found.extend(int(child) for child in task.read_text().split())
        place += 1
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> str:
    """The code measured, CPUs and load: on a shared machine, the load average says how
    noisy a run was."""
    one, five, _ = os.getloadavg()
    return (f"commit {commit()}, {os.cpu_count()} CPUs, load average {one:.1f} (1 min), "
            f"{five:.1f} (5 min)")


def commit() -> str:
    """The commit of the code measured, with '+changes' when app/ differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "app"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


# --- an instance -----------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[int]:
        """This process and those it started (``ccm smtp``'s siblings), while alive."""
        return process_tree(self.pid)

    def cpu_seconds(self) -> float:
        """The CPU time of it and the processes it started, so far."""
        return sum(cpu_seconds(pid) for pid in self.tree())

    def kill(self) -> None:
        """SIGKILL to it and every process it started, as a crash of them all would: no
        clean-up of any kind (killed alone, ``ccm smtp``'s siblings would stop gracefully)."""
        if self.alive():
            for pid in reversed(self.tree()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 5) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Instance:
    """A temporary CCM instance: folder, database, environment, processes."""

    name: str
    postgres: bool = False
    env_extra: dict = field(default_factory=dict)
    keep: bool = False

    def __post_init__(self):
        # CCM_BENCH_KEEP=1 keeps the instance folder (its logs) for a look afterwards.
        self.keep = self.keep or os.environ.get("CCM_BENCH_KEEP") == "1"
        self.path = Path(tempfile.mkdtemp(prefix=f"ccm-bench-{self.name}-"))
        self.smtp_port = free_port()
        self.http_port = free_port()
        if self.postgres:
            self.database_url = f"{PG_SERVER}/{PG_DATABASE}"
            recreate_postgres()
        else:
            self.database_url = f"sqlite:///{self.path / 'ccm.sqlite3'}"
        self.secret_key = "bench-secret-key-" + self.path.name
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CCM_")},
            "CCM_INSTANCE_PATH": str(self.path),
            "CCM_DATABASE_URL": self.database_url,
            "CCM_SECRET_KEY": self.secret_key,
            "CCM_SMTP_LISTEN": f"{LOOPBACK}:{self.smtp_port}",
            "CCM_HTTP_LISTEN": f"{LOOPBACK}:{self.http_port}",
            "CCM_BASE_URL": f"http://{LOOPBACK}:{self.http_port}",
            "CCM_HELO_NAME": "gateway.bench.test",
            "PYTHONUNBUFFERED": "1",
            # this checkout's code: .venv/bin/ccm of a worktree sharing another's .venv
            # would import the package where that one was installed from
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [
                os.environ.get("PYTHONPATH")])]),
            **{k: str(v) for k, v in self.env_extra.items()},
        }
        self.processes: list[Process] = []
        self._app = None

    @property
    def database(self) -> str:
        return "PostgreSQL" if self.postgres else "SQLite"

    # -- commands and processes

    def ccm(self, *args: str, check: bool = True, timeout: float = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([CCM, *args], env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=timeout,
                                cwd=self.path)
        if check and result.returncode != 0:
            raise RuntimeError(f"ccm {' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}")
        return result

    def start(self, *args: str, port: int | None = None, ready: str | None = None,
              env: dict | None = None, timeout: float = 60) -> Process:
        """Start ``ccm ARGS`` and wait until ``port`` listens or ``ready`` is logged."""
        name = "-".join(args)
        log = self.path / f"{name}.{len(self.processes)}.log"
        handle = open(log, "wb")  # noqa: SIM115 - the child keeps it open
        popen = subprocess.Popen([CCM, *args], env={**self.env, **(env or {})},
                                 stdout=handle, stderr=subprocess.STDOUT, cwd=self.path,
                                 stdin=subprocess.DEVNULL)
        handle.close()
        process = Process(name, popen, log)
        self.processes.append(process)
        try:
            if port is not None:
                wait_for_port(port, timeout, popen)
            if ready is not None:
                deadline = time.monotonic() + timeout
                while ready not in log.read_text(errors="replace"):
                    if popen.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"ccm {name} did not start:\n{process.tail()}")
                    time.sleep(0.05)
        except BaseException:
            process.kill()
            raise
        return process

    def smtp(self, processes: int = 0, **kw) -> Process:
        """``ccm smtp --processes N`` (0: its default, one a core), once every process
        of it has started and listens."""
        from app.smtp.processes import default_count

        smtp = self.start("smtp", "--processes", str(processes), port=self.smtp_port, **kw)
        count, deadline = processes or default_count(), time.monotonic() + 60
        # each process says so once it serves (their output goes to one log)
        while smtp.log.read_text(errors="replace").count("listening on") < count:
            if not smtp.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"ccm smtp did not start:\n{smtp.tail()}")
            time.sleep(0.05)
        return smtp

    def web(self, threads: int | None = None, **kw) -> Process:
        args = ("web",) if threads is None else ("web", "--threads", str(threads))
        return self.start(*args, port=self.http_port, **kw)

    def worker(self, **kw) -> Process:
        return self.start("worker", ready="CCM worker started", **kw)

    def import_config(self, text: str) -> str:
        path = self.path / "config.yaml"
        path.write_text(text)
        return self.ccm("config", "import", str(path)).stdout

    # -- in this process

    def app(self):
        """The application on this instance's database, for setup and checks."""
        if self._app is None:
            from app import create_app

            self._app = create_app({"DATABASE_URL": self.database_url,
                                    "SECRET_KEY": self.secret_key,
                                    "PASSWORD_HASH": CHEAP_HASH},
                                   instance_path=str(self.path))
        return self._app

    def sql(self, statement: str, params: dict | None = None) -> list:
        """Run one SQL statement on a connection of its own; the rows it returns."""
        from sqlalchemy import text

        from app.extensions import db

        with self.app().app_context(), db.engine.begin() as connection:
            result = connection.execute(text(statement), params or {})
            return list(result) if result.returns_rows else []

    def close(self) -> None:
        for process in reversed(self.processes):
            process.kill()
        if self._app is not None:
            from app.extensions import db

            with self._app.app_context():
                db.session.remove()
                db.engine.dispose()
        if self.postgres:
            drop_postgres()
        if self.keep:
            print(f"  (kept {self.path})")
        else:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Instance:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _psql(statement: str, database: str = "postgres") -> None:
    subprocess.run(["psql", "-h", LOOPBACK, "-U", "postgres", "-d", database, "-q",
                    "-v", "ON_ERROR_STOP=1", "-c", statement],
                   check=True, capture_output=True, text=True)


def recreate_postgres() -> None:
    drop_postgres()
    _psql(f"CREATE DATABASE {PG_DATABASE}")


def drop_postgres() -> None:
    _psql(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


# --- tenants ---------------------------------------------------------------------------

TENANT_YAML = """\
tenants:
  - slug: acme
    name: Acme Corp
    domains: [acme.test]
    visibility_days: 30
    application_settings:
      - {name: Default, default: true, portal_ccm: false, send_secure: true}
    users:
      - {email: alice@acme.test, role: internal}
%(policies)s
"""

ROUTE_ALL_TO_CCM = """\
    policies:
      - {name: All, kind: route, to: "*"}
"""


def tenant_yaml(*, ccm: bool) -> str:
    """Tenant ``acme`` (domain acme.test, sender alice@acme.test); with ``ccm`` a route
    policy sends every recipient by CCM, otherwise external recipients go out by
    CCM_OUTBOUND."""
    return TENANT_YAML % {"policies": ROUTE_ALL_TO_CCM if ccm else ""}


def set_password(instance: Instance, email: str, password: str = PASSWORD,
                 tenant: str = "acme") -> None:
    """Give an account a known password, with no forced change (as after first sign-in)."""
    from sqlalchemy import select

    from app.domain.passwords import hash_password
    from app.extensions import db
    from app.models import Tenant, User

    with instance.app().app_context():
        user = db.session.scalar(select(User).join(Tenant).where(
            Tenant.slug == tenant, User.email == email))
        if user is None:
            raise LookupError(f"no account {email} at {tenant}")
        user.password_hash = hash_password(password)
        user.must_change_password = False
        user.failed_signins, user.locked_until = 0, None
        db.session.commit()
        db.session.remove()


def simple_message(subject: str = "Quarterly figures", body_bytes: int = 2000,
                   to: str = "pat@partner.test", message_id: str | None = None,
                   attachment: bytes | None = None) -> bytes:
    """A message from alice@acme.test as a mail client would send it."""
    from email.message import EmailMessage
    from email.policy import SMTP

    message = EmailMessage()
    message["From"] = "Alice <alice@acme.test>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Mon, 30 Nov 2026 09:00:00 +0000"
    message["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@acme.test>"
    line = "Figures for the quarter are attached; numbers are final. 0123456789\n"
    message.set_content(line * max(1, body_bytes // len(line)))
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="octet-stream",
                               filename="figures.bin")
    return message.as_bytes(policy=SMTP)


@dataclass
class LoadPlan:
    """Messages to write straight into the database, one CCM recipient each."""

    owners: list[str]  # the recipient address of each message
    subjects: list[str]
    received_at: list  # datetime of each message
    visible_days: int = 30
    raw: bytes = b""


def bulk_load(instance: Instance, plan: LoadPlan, *, batch: int = 5000,
              progress: bool = True) -> dict[str, int]:
    """Write ``plan`` into the database as the gateway would have, fast.

    One seed message goes through ``ingest.receive`` (the real path: message, recipient,
    delivery events, queued notifications, the recipient's account); every other row is
    a copy of the seed's rows with its own ids, addresses, subject and times, inserted
    with executemany in batches. Accounts are created for every owner. The seed itself
    stays (one message more than planned). Returns the row counts written.
    """
    import secrets as _secrets
    from datetime import timedelta

    from sqlalchemy import func, select

    from app.domain import ingest
    from app.extensions import db
    from app.models import DeliveryEvent, Message, OutboundItem, Recipient, User

    tables = {name: model.__table__ for name, model in (
        ("message", Message), ("recipient", Recipient), ("delivery_event", DeliveryEvent),
        ("outbound_item", OutboundItem), ("users", User))}
    counts = dict.fromkeys(tables, 0)
    with instance.app().app_context():
        seed = ingest.receive(plan.raw, "alice@acme.test", [plan.owners[0]],
                              client_address="127.0.0.1")
        db.session.commit()
        seed_id = seed.id
        db.session.remove()
        connection = db.session.connection()

        def rows(table, **where):
            statement = select(table)
            for key, value in where.items():
                statement = statement.where(table.c[key].in_(value) if isinstance(
                    value, list) else table.c[key] == value)
            return [dict(r._mapping) for r in connection.execute(statement)]

        message_row = rows(tables["message"], id=seed_id)[0]
        recipient_row = rows(tables["recipient"], message_id=seed_id)[0]
        event_rows = rows(tables["delivery_event"], recipient_id=recipient_row["id"])
        item_rows = rows(tables["outbound_item"], recipient_id=recipient_row["id"])
        user_row = rows(tables["users"], id=recipient_row["user_id"])[0]

        next_id = {name: (connection.scalar(select(func.max(table.c.id))) or 0) + 1
                   for name, table in tables.items()}

        def take(name: str) -> int:
            value = next_id[name]
            next_id[name] += 1
            return value

        # accounts for every owner
        known = {r.email: r.id for r in connection.execute(
            select(tables["users"].c.email, tables["users"].c.id))}
        new_users = []
        for email in dict.fromkeys(plan.owners):
            if email not in known:
                known[email] = take("users")
                new_users.append({**user_row, "id": known[email], "email": email,
                                  "password_hash": None})
        for start in range(0, len(new_users), batch):
            connection.execute(tables["users"].insert(), new_users[start:start + batch])
        counts["users"] = len(new_users)

        pending: dict[str, list] = {name: [] for name in tables if name != "users"}

        def flush() -> None:
            for name, waiting in pending.items():
                if waiting:
                    connection.execute(tables[name].insert(), waiting)
                    counts[name] += len(waiting)
                    waiting.clear()

        window = timedelta(days=plan.visible_days)
        total = len(plan.owners)
        started = time.monotonic()
        for number, (owner, subject, at) in enumerate(
                zip(plan.owners, plan.subjects, plan.received_at, strict=True)):
            message_id = take("message")
            pending["message"].append({
                **message_row, "id": message_id, "public_id": _secrets.token_urlsafe(16),
                "subject": subject, "message_id_header": f"<bulk-{message_id}@acme.test>",
                "received_at": at, "expires_at": at + window})
            recipient_id = take("recipient")
            pending["recipient"].append({
                **recipient_row, "id": recipient_id, "message_id": message_id,
                "address": owner, "user_id": known[owner], "visible_until": at + window,
                # the copy of the message's time that the inbox is ordered by (0008)
                **({"received_at": at} if "received_at" in recipient_row else {})})
            for event in event_rows:
                pending["delivery_event"].append({
                    **event, "id": take("delivery_event"), "recipient_id": recipient_id,
                    "at": at})
            for item in item_rows:  # notifications, sent long ago
                pending["outbound_item"].append({
                    **item, "id": take("outbound_item"), "recipient_id": recipient_id,
                    "rcpt_to": owner, "created_at": at, "next_attempt_at": at,
                    "state": "done", "attempts": 1, "raw": None, "lease_until": None,
                    "finished_at": at})
            if len(pending["message"]) >= batch:
                flush()
                db.session.commit()
                connection = db.session.connection()
                if progress and (number + 1) % (batch * 10) == 0:
                    rate = (number + 1) / (time.monotonic() - started)
                    print(f"  loaded {number + 1}/{total} messages ({rate:.0f}/s)",
                          flush=True)
        flush()
        if db.engine.dialect.name == "postgresql":
            for name in tables:
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))")
        db.session.commit()
        db.session.remove()
    if instance.postgres:
        # What autovacuum would soon do; SQLite is left as the application leaves it
        # (CCM never runs ANALYZE there).
        _psql("ANALYZE", database=PG_DATABASE)
    return counts


# --- HTTP ------------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


class Browser:
    """Just enough of a browser for the portal: cookies and forms with CSRF tokens."""

    def __init__(self, port: int, host: str = LOOPBACK, source: str | None = None):
        self.host, self.port = host, port
        self.source = source  # the loopback address requests come from, if not the default
        self.cookies: dict[str, str] = {}

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def request(self, method: str, path: str, body: dict | None = None,
                timeout: float = 60) -> tuple[int, dict, bytes]:
        connection = http.client.HTTPConnection(
            self.host, self.port, timeout=timeout,
            source_address=(self.source, 0) if self.source else None)
        headers = {"Cookie": self.cookie_header} if self.cookies else {}
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            content = response.read()
            for value in response.msg.get_all("Set-Cookie") or []:
                cookie = SimpleCookie()
                cookie.load(value)
                for key, morsel in cookie.items():
                    self.cookies[key] = morsel.value
            return response.status, dict(response.getheaders()), content
        finally:
            connection.close()

    def get(self, path: str, **kw) -> tuple[int, dict, bytes]:
        return self.request("GET", path, **kw)

    def sign_in(self, email: str, password: str = PASSWORD, slug: str = "acme") -> None:
        path = f"/t/{slug}/sign-in"
        status, _, page = self.get(path)
        match = _CSRF.search(page.decode())
        if status != 200 or not match:
            raise RuntimeError(f"no sign-in form at {path} ({status})")
        status, headers, _ = self.request(
            "POST", path, {"csrf_token": match.group(1), "email": email, "password": password})
        if status not in (302, 303) or "sign-in" in headers.get("Location", ""):
            raise RuntimeError(f"sign-in as {email} refused ({status}, "
                               f"{headers.get('Location')})")


# --- profiles --------------------------------------------------------------------------

#: py-spy's collapsed stacks go here (they are megabytes: not kept in the repository)
PROFILES = Path(os.environ.get("CCM_BENCH_PROFILES")
                or Path(tempfile.gettempdir()) / "ccm-bench-profiles")


def py_spy() -> str | None:
    """py-spy, from $PY_SPY or the PATH (it is not a dependency of the project)."""
    found = os.environ.get("PY_SPY") or shutil.which("py-spy")
    return found if found and os.path.exists(found) else None


def record_profile(pid: int, name: str, seconds: float | None,
                   gil: bool = False) -> subprocess.Popen | None:
    """Start sampling ``pid`` with py-spy for ``seconds`` (wait() on the result), or
    until :func:`stop_profile` when ``seconds`` is None; ``gil``: only the thread holding
    the GIL (what the CPU does), not every thread's waits."""
    spy = py_spy()
    if spy is None:
        print("  (py-spy not found: set PY_SPY=/path/to/py-spy for a profile)")
        return None
    PROFILES.mkdir(exist_ok=True)
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
         "--output", str(PROFILES / f"{name}.txt"), "--nonblocking", *(["--gil"] if gil else []),
         *(["--duration", str(int(seconds))] if seconds else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(recorder: subprocess.Popen | None) -> None:
    if recorder is not None:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)


def summarize_profile(name: str, top: int = 25, only: str = "app/") -> str:
    """The functions of ``only`` (default the app) with the most samples, inclusive."""
    path = PROFILES / f"{name}.txt"
    if not path.exists():
        return "(no profile)"
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            if only in frame or only == "":
                inclusive[frame] = inclusive.get(frame, 0) + int(count)
    ranked = sorted(inclusive.items(), key=lambda item: -item[1])[:top]
    lines = [f"  {count / total:6.1%}  {frame}" for frame, count in ranked]
    return f"py-spy, {total} samples, {path}:\n" + "\n".join(lines)


def profile_share(name: str, frame: str) -> float:
    """The share of samples with a frame containing ``frame`` in their stack."""
    total = hits = 0
    for line in (PROFILES / f"{name}.txt").read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            total += int(count)
            hits += int(count) if frame in stack else 0
    return hits / total if total else 0.0


# --- HTTP load (thread pool over http.client), also run as a subprocess ----------------


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        return {"requests": self.requests, "errors": self.errors,
                "seconds": round(self.seconds, 2), "rps": round(self.rate, 1),
                "p50_ms": round(percentile(self.latencies_ms, 50), 2),
                "p95_ms": round(percentile(self.latencies_ms, 95), 2),
                "p99_ms": round(percentile(self.latencies_ms, 99), 2),
                "max_ms": round(max(self.latencies_ms, default=float("nan")), 2),
                "statuses": self.statuses}


def http_load(url: str, *, cookie: str = "", duration: float = 15, concurrency: int = 8,
              rate: float | None = None, stop_file: str | None = None) -> LoadResult:
    """GET ``url`` from ``concurrency`` keep-alive connections until ``duration`` ends
    (or ``stop_file`` appears); with ``rate``, each connection waits so that all of them
    together ask about ``rate`` requests a second (a probe rather than a load)."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Cookie": cookie} if cookie else {}
    latencies: list[float] = []
    statuses: dict = {}
    errors = [0]
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + duration
    gap = concurrency / rate if rate else 0.0

    def run() -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        mine: list[float] = []
        next_at = time.monotonic()
        while time.monotonic() < deadline and not (stop_file and os.path.exists(stop_file)):
            if gap:
                next_at += gap
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            t0 = time.perf_counter()
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
                with lock:
                    errors[0] += 1
                continue
            mine.append((time.perf_counter() - t0) * 1000)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(len(latencies), errors[0], time.monotonic() - started, latencies,
                      statuses)


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("http-load")
    load.add_argument("--url", required=True)
    load.add_argument("--cookie", default="")
    load.add_argument("--duration", type=float, default=15)
    load.add_argument("--concurrency", type=int, default=8)
    load.add_argument("--rate", type=float)
    load.add_argument("--stop-file")
    args = parser.parse_args()
    result = http_load(args.url, cookie=args.cookie, duration=args.duration,
                       concurrency=args.concurrency, rate=args.rate, stop_file=args.stop_file)
    print(json.dumps(result.summary()))


if __name__ == "__main__":
    _main()
