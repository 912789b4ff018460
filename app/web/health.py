"""``/healthz`` and ``/readyz``: what a load balancer, systemd or Docker asks a portal process.

``/healthz`` says the process answers at all; ``/readyz`` says it can also reach its
database, and names what is down when it cannot. Both are answered in front of the portal
(WSGI middleware), before sign-in, sessions, CSRF and throttling see the request: a probe
needs no cookie, gets none, and is never counted against a client.
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from app import config as settings

#: how long readiness waits for the database, within any prober's own timeout
TIMEOUT_SECONDS = 2
#: what readiness says of a database that answers but has no CCM tables
NOT_MIGRATED = "database: no CCM tables (run ccm db upgrade)"
TEXT = "text/plain; charset=utf-8"
_HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]


class DatabaseProbe:
    """Whether the database answers now, asked over a fresh connection each time.

    A fresh connection (not one of the pool's) with short timeouts, so the answer comes
    within seconds whatever state the pool is in, and is what a new process would see:
    a SQLite file that was moved away is still readable through connections opened
    before, and only a new one finds it gone. SQLite is opened read-only, so that asking
    never creates an empty database where the real one was.
    """

    def __init__(self, database_url: str):
        self.database_url = database_url
        self._engine: Engine | None = None

    def problem(self) -> str | None:
        """None when the database answers, else a short text naming what is down."""
        try:
            connection = self.engine().connect()
        except SQLAlchemyError:
            return "database: unreachable"
        with connection:
            try:
                connection.execute(text("SELECT version_num FROM alembic_version")).all()
            except SQLAlchemyError:
                return NOT_MIGRATED
        return None

    def engine(self) -> Engine:
        if self._engine is None:
            url = make_url(self.database_url)
            if url.get_backend_name() == "sqlite":
                if url.database and url.database != ":memory:" and "uri" not in url.query:
                    url = url.set(database=f"file:{quote(url.database)}",
                                  query={**url.query, "mode": "ro", "uri": "true"})
                arguments: dict = {"timeout": TIMEOUT_SECONDS}
            else:  # every wait bounded as for the pool, only shorter
                arguments = settings.postgresql_timeouts(
                    dict.fromkeys(("DATABASE_CONNECT_TIMEOUT", "DATABASE_STATEMENT_TIMEOUT",
                                   "DATABASE_LOCK_TIMEOUT"), TIMEOUT_SECONDS),
                    url.query.get("options"))
                url = url.difference_update_query(["options"])
            self._engine = create_engine(url, poolclass=NullPool, connect_args=arguments)
        return self._engine


class Probes:
    """WSGI middleware answering ``/healthz`` and ``/readyz``; everything else goes on."""

    def __init__(self, app, database_url: str):
        self.app = app
        self.database = DatabaseProbe(database_url)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        if path not in ("/healthz", "/readyz"):
            return self.app(environ, start_response)
        if refused := not_get(environ, start_response):
            return refused
        problem = self.database.problem() if path == "/readyz" else None
        if problem:
            return answer(environ, start_response, "503 Service Unavailable", problem)
        return answer(environ, start_response, "200 OK", "ok")


def not_get(environ, start_response) -> list[bytes] | None:
    """The 405 answer for a probe's address asked with anything but GET or HEAD."""
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
        return None
    return answer(environ, start_response, "405 Method Not Allowed", "use GET or HEAD",
                  extra=[("Allow", "GET, HEAD")])


def answer(environ, start_response, status: str, body: str | bytes, *,
           content_type: str = TEXT, extra: list | None = None) -> list[bytes]:
    """A probe's answer, never cached, its body left out for HEAD (its length said)."""
    data = body if isinstance(body, bytes) else f"{body}\n".encode()
    start_response(status, [("Content-Type", content_type), *_HEADERS,
                            ("Content-Length", str(len(data))), *(extra or [])])
    return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else data]
