"""/healthz, /readyz and the portal's pages while the database is down.

The outage is real: on PostgreSQL the portal reaches its database through a TCP relay
the test cuts (tests/servers.py); on SQLite the folder holding the database file goes
away, as when a volume is unmounted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from servers import CCM, CcmWeb, TcpRelay, Visitor, ccm_environment, free_port
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from app.models import Tenant
from app.web import errors

DATABASE_URL = os.environ.get("CCM_TEST_DATABASE_URL")
PROBES = ("/healthz", "/readyz")
DOWN = "database: unreachable\n"
#: pages that read the database even for a visitor who is not signed in
PAGES = ("/t/acme/sign-in", "/t/acme/sign-in?next=/inbox/")


def test_probes_answer_ok_and_leave_no_trace(client, make_tenant, auth, make_user):
    make_user(make_tenant(), "alice@acme.test")
    for signed_in in (False, True):
        if signed_in:
            auth.sign_in("alice@acme.test")
        for path in PROBES:
            for method in ("GET", "HEAD"):
                answer = client.open(path, method=method)
                assert answer.status_code == 200, (path, method)
                assert answer.headers["Cache-Control"] == "no-store"
                assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
                assert "Set-Cookie" not in answer.headers
                if method == "GET":
                    assert answer.text == "ok\n"


def test_probes_take_only_get_and_head(client):
    for path in PROBES:
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            answer = client.open(path, method=method)
            assert answer.status_code == 405, (path, method)
            assert answer.headers["Allow"] == "GET, HEAD"
            assert "Set-Cookie" not in answer.headers


def test_probes_are_exact_paths(client):
    for path in ("/healthz/", "/readyz/x", "/HEALTHZ", "/healthzz"):
        assert client.get(path).status_code == 404, path


def test_readiness_names_a_database_without_ccm_tables(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
                      "SECRET_KEY": "x", "TESTING": True}, instance_path=str(tmp_path))
    with contextlib.closing(sqlite3.connect(tmp_path / "empty.sqlite3")) as other:
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("CREATE TABLE notes (text)")  # a database, but not CCM's
    answer = app.test_client().get("/readyz")
    assert (answer.status_code, answer.text) == (503, "database: no CCM tables "
                                                      "(run ccm db upgrade)\n")


# --- an outage, in the test's own process (SQLite) --------------------------------------


@pytest.fixture
def on_a_volume(tmp_path, migrated_database):
    """An application whose SQLite database is in ``volume/``, which the test can take
    away; returns the application and the folder."""
    if DATABASE_URL:
        pytest.skip("plays a SQLite outage; the PostgreSQL one is test_ccm_web_*")
    volume = tmp_path / "volume"
    volume.mkdir()
    shutil.copy(migrated_database, volume / "ccm.sqlite3")
    app = create_app({"TESTING": True, "SECRET_KEY": "volume-test",
                      "DATABASE_URL": f"sqlite:///{volume / 'ccm.sqlite3'}",
                      "OUTBOUND": f"maildir:{tmp_path / 'outbox'}"},
                     instance_path=str(tmp_path))
    with app.app_context():
        yield app, volume
        db.session.remove()
        db.engine.dispose()


@contextlib.contextmanager
def taken_away(volume: Path):
    """The volume is gone for the ``with`` block; connections opened before are closed,
    as after a restart."""
    db.session.remove()
    db.engine.dispose()
    away = volume.with_name("away")
    volume.rename(away)
    try:
        yield
    finally:
        away.rename(volume)


def test_while_the_database_is_gone_pages_answer_503_and_log_one_line(on_a_volume, caplog):
    app, volume = on_a_volume
    db.session.add(Tenant(slug="acme", name="Acme Corp"))
    db.session.commit()
    client = app.test_client()
    client.set_cookie("ccm_last_tenant", "acme")
    caplog.set_level(logging.WARNING)
    with taken_away(volume):
        for path in (*PAGES, "/sign-in"):
            answer = client.get(path)
            assert answer.status_code == 503, path
            assert answer.headers["Retry-After"] == str(errors.RETRY_AFTER_SECONDS)
            assert "Temporarily unavailable" in answer.text
        assert client.get("/healthz").status_code == 200
        assert (client.get("/readyz").status_code, client.get("/readyz").text) == (503, DOWN)
    records = [r for r in caplog.records if r.name == "app.web.errors"]
    assert len(records) == 3
    assert all(r.exc_info is None and "unable to open database file" in r.getMessage()
               for r in records)
    for path in (*PAGES, "/readyz"):
        assert client.get(path).status_code in (200, 302), path


def test_a_fault_in_the_code_is_still_a_500_with_its_traceback(app):
    from sqlalchemy import text

    @app.get("/broken")
    def broken():
        db.session.execute(text("SELECT no_such_column FROM tenants"))

    with pytest.raises(Exception, match="no_such_column"):
        app.test_client().get("/broken")


# --- an outage under ``ccm web`` --------------------------------------------------------


def probe(port: int, path: str, **kwargs):
    return Visitor(port).request("GET", path, **kwargs)


def pages_answer(port: int, status: int) -> None:
    remembering = Visitor(port)
    remembering.cookies["ccm_last_tenant"] = "acme"
    for path in PAGES:
        answer = probe(port, path)
        assert answer.status == status, (path, answer.status)
    assert remembering.request("GET", "/sign-in").status == (302 if status == 200 else 503)
    if status == 503:
        answer = probe(port, PAGES[0])
        assert answer.headers["Retry-After"] == str(errors.RETRY_AFTER_SECONDS)
        assert "Temporarily unavailable" in answer.text
        # The form itself needs no database; signing in does.
        assert Visitor(port).submit("/sign-in", {"email": "a@acme.test",
                                                 "password": "x"}).status == 503


def test_ccm_web_on_postgresql_through_an_outage(app, make_tenant, tmp_path):
    if not DATABASE_URL:
        pytest.skip("needs CCM_TEST_DATABASE_URL (PostgreSQL)")
    make_tenant()
    url = make_url(DATABASE_URL)
    with TcpRelay((url.host or "127.0.0.1", url.port or 5432)) as relay:
        through = url.set(host="127.0.0.1", port=relay.port)
        with CcmWeb(tmp_path, {"CCM_DATABASE_URL": through.render_as_string(False),
                               "CCM_SECRET_KEY": "outage-test"}) as web:
            assert probe(web.port, "/readyz").status == 200
            pages_answer(web.port, 200)
            for outage in TcpRelay.OUTAGES:
                relay.cut(outage)
                assert probe(web.port, "/healthz").text == "ok\n"
                answer = probe(web.port, "/readyz")
                assert (answer.status, answer.text) == (503, DOWN), outage
                if outage == "refuse":  # a silent network holds a page: see operations.md
                    pages_answer(web.port, 503)
                relay.restore()
                assert probe(web.port, "/readyz").status == 200
                pages_answer(web.port, 200)
            log = web.output()
    assert "Traceback" not in log
    assert log.count("database unavailable, answered 503") == len(PAGES) + 3


def test_ccm_web_on_sqlite_through_an_outage(tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    with CcmWeb(tmp_path, {"CCM_DATABASE_URL": f"sqlite:///{volume / 'ccm.sqlite3'}",
                           "CCM_SECRET_KEY": "outage-test"}) as web:
        assert probe(web.port, "/readyz").status == 200
        volume.rename(tmp_path / "away")
        assert probe(web.port, "/healthz").text == "ok\n"
        answer = probe(web.port, "/readyz")
        assert (answer.status, answer.text) == (503, DOWN)
        # Nothing was created where the database was.
        assert not volume.exists()
        (tmp_path / "away").rename(volume)
        assert probe(web.port, "/readyz").status == 200
        log = web.output()
    assert "Traceback" not in log
    assert os.listdir(volume) != []


def test_a_process_whose_database_is_down_at_start_says_so_in_one_line(tmp_path):
    """As a process manager sees it: status 1 and one line, then it tries again later."""
    env = ccm_environment(tmp_path)
    for url in (f"sqlite:///{tmp_path / 'unmounted' / 'ccm.sqlite3'}",
                f"postgresql+psycopg://ccm@127.0.0.1:{free_port()}/ccm"):
        for command in (["web"], ["db", "upgrade"]):
            done = subprocess.run([str(CCM), *command], env={**env, "CCM_DATABASE_URL": url},
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 1, (url, command, done.stderr)
            assert done.stderr.startswith("ccm: database: "), done.stderr
            assert len(done.stderr.splitlines()) == 1, done.stderr
