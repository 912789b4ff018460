"""Fixtures: an application on a real database, factories, and a signed-in helper.

The suite runs on SQLite; with ``CCM_TEST_DATABASE_URL`` set it runs on that database
(PostgreSQL) instead. Either way the schema comes from the real migrations.
"""

from __future__ import annotations

import contextvars
import os
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from flask import has_app_context
from flask.testing import FlaskClient
from sqlalchemy import create_engine, inspect, text
from support import PASSWORD, assert_agrees, original_scan, post_form

from app import clock, create_app, database
from app.domain.passwords import hash_password
from app.extensions import db, limiter
from app.mail import parts
from app.models import ApplicationSettings, Domain, Tenant, User

#: argon2id at its cheapest: tests check behaviour, tests/test_passwords.py checks strength
CHEAP_HASH = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
DATABASE_URL = os.environ.get("CCM_TEST_DATABASE_URL")


def settings(instance: Path, **extra) -> dict:
    return {
        "TESTING": True,
        "DATABASE_URL": DATABASE_URL or f"sqlite:///{instance / 'ccm.sqlite3'}",
        "SECRET_KEY": "test-secret-key",
        "BASE_URL": "http://localhost",
        "OUTBOUND": f"maildir:{instance / 'outbox'}",
        "PASSWORD_HASH": CHEAP_HASH,
        "RATELIMIT_ENABLED": False,
        **extra,
    }


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory) -> Path:
    """Run the migrations once: into a template SQLite file, or into the test PostgreSQL."""
    instance = tmp_path_factory.mktemp("template")
    if DATABASE_URL:
        engine = create_engine(DATABASE_URL)
        with engine.begin() as connection:
            # Start from an empty schema whatever an earlier run left behind.
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    app = create_app(settings(instance), instance_path=str(instance))
    with app.app_context():
        database.upgrade()
        db.engine.dispose()
    return instance / "ccm.sqlite3"


@pytest.fixture
def app(tmp_path, migrated_database, request):
    """A fresh application with an empty, migrated database of its own."""
    extra = getattr(request, "param", None) or {}
    if not DATABASE_URL:
        shutil.copy(migrated_database, tmp_path / "ccm.sqlite3")
    application = create_app(settings(tmp_path, **extra), instance_path=str(tmp_path))
    with application.app_context():
        if application.config["RATELIMIT_ENABLED"]:
            limiter.reset()
        try:
            yield application
        finally:
            db.session.remove()
            if DATABASE_URL:
                _empty_tables()
            db.engine.dispose()


def _empty_tables() -> None:
    names = [t for t in inspect(db.engine).get_table_names() if t != "alembic_version"]
    if names:
        with db.engine.begin() as connection:
            quoted = ", ".join(f'"{name}"' for name in names)
            connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))


class IsolatedClient(FlaskClient):
    """Runs each request as production does: in contexts of its own.

    Without this, requests would share the test's application context, and with it
    ``g`` (Flask-Login's cached user) and the database session, hiding real bugs.
    Afterwards the test's own session forgets what it had loaded, so reads are fresh.
    """

    def open(self, *args, **kwargs):
        response = contextvars.Context().run(super().open, *args, **kwargs)
        if has_app_context():  # not so inside a redirect being followed
            db.session.expire_all()
        return response


@pytest.fixture
def client(app):
    app.test_client_class = IsolatedClient
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# --- factories ---------------------------------------------------------------------


@pytest.fixture
def make_tenant(app):
    def make(slug="acme", name=None, domains=("acme.test",), **values) -> Tenant:
        tenant = Tenant(slug=slug, name=name or slug.title() + " Corp", **values)
        tenant.domains = [Domain(name=d) for d in domains]
        tenant.application_settings = [ApplicationSettings(name="Default", is_default=True)]
        db.session.add(tenant)
        db.session.commit()
        return tenant

    return make


@pytest.fixture
def acme(make_tenant):
    """Tenant acme, whose one domain is acme.test; a directory's conftest.py or a test
    file may build on it (a fixture of the same name that asks for ``acme``)."""
    return make_tenant("acme", domains=["acme.test"])


@pytest.fixture
def make_ccm_sender(make_user):
    """``make_ccm_sender(tenant, email)``: an internal user on the tenant's "Legal"
    application settings, which let them send by CCM (Send Secure and the composer)."""
    def make(tenant: Tenant, email: str) -> User:
        legal = next((s for s in tenant.application_settings if s.name == "Legal"), None)
        if legal is None:
            legal = ApplicationSettings(name="Legal", portal_ccm=True, send_secure=True)
            tenant.application_settings.append(legal)
            db.session.commit()
        return make_user(tenant, email, role="internal", application_settings=legal)
    return make


@pytest.fixture
def make_user(app):
    def make(tenant: Tenant, email: str, *, role="external", password=PASSWORD,
             must_change=False, **values) -> User:
        user = User(
            tenant=tenant,
            email=email,
            role=role,
            kind="external" if role == "external" else "internal",
            password_hash=hash_password(password) if password else None,
            must_change_password=must_change,
            failed_signins=0,
            disabled=False,
            **values,
        )
        db.session.add(user)
        db.session.commit()
        return user

    return make


# --- signed-in helper ----------------------------------------------------------------


class Auth:
    def __init__(self, client):
        self.client = client

    def sign_in(self, email: str, password: str = PASSWORD, slug: str | None = None, **kw):
        path = f"/t/{slug}/sign-in" if slug else "/sign-in"
        return post_form(self.client, path, {"email": email, "password": password}, **kw)

    def sign_out(self):
        return post_form(self.client, "/sign-out", {}, form_path="/inbox/")

    def signed_in(self) -> bool:
        """Whether the client's session reaches the inbox now."""
        return self.client.get("/inbox/").status_code == 200


@pytest.fixture
def auth(client):
    return Auth(client)


# --- time ---------------------------------------------------------------------------


class FrozenClock:
    """The time every module of the application sees (app/clock.py), held still: at the
    real time when the test starts, then wherever the test ``set``s or ``advance``s it."""

    def __init__(self) -> None:
        self.now = clock.utcnow()
        clock.freeze(self.now)

    def set(self, moment: datetime) -> None:
        self.now = moment
        clock.freeze(moment)

    def advance(self, delta: timedelta) -> None:
        self.set(self.now + delta)


@pytest.fixture
def frozen_clock():
    frozen = FrozenClock()
    try:
        yield frozen
    finally:
        clock.freeze(None)


@pytest.fixture(autouse=True)
def every_message_agrees(monkeypatch):
    """Whatever a test sends through the gateway is checked against the full parse."""
    checking = []

    def checked(raw):
        index = original_scan(raw)
        if index is not None and not checking:
            checking.append(raw)
            try:
                assert_agrees(bytes(raw))
            finally:
                checking.pop()
        return index

    monkeypatch.setattr(parts, "scan", checked)
    # every message, however small, takes the indexed path the large ones take
    monkeypatch.setattr(parts, "INDEX_FROM", 0)


@pytest.fixture
def redis_store():
    """A client of the real Redis on 127.0.0.1:6379 (the test is skipped without it)."""
    client = redis.Redis("127.0.0.1", 6379, socket_timeout=5)
    try:
        client.ping()
    except redis.ConnectionError:
        client.close()
        pytest.skip("Redis does not answer on 127.0.0.1:6379")
    with client:
        yield client


@pytest.fixture
def redis_prefix(redis_store):
    """A key prefix of the test's own, so parallel runs do not count each other's
    attempts; its keys are removed afterwards."""
    prefix = f"ccm-test-{uuid.uuid4().hex}"
    yield prefix
    if keys := list(redis_store.scan_iter(f"{prefix}:*")):
        redis_store.delete(*keys)
