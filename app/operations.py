"""Commands an operator runs to check a deployment: ``ccm config check``, and what
``ccm db upgrade`` applied.

The syntax of every ``CCM_*`` variable is checked before any command runs (app/config.py:
a process with a setting it cannot read does not start); ``ccm config check`` adds what
only the running system can tell: whether the files named can be loaded and the
database answers.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
from datetime import timedelta

import click
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app import clock
from app import config as settings
from app.domain import config_checks
from app.extensions import db
from app.models import Job
from app.smtp import ingress
from app.web import health


@click.command("check")
def config_check() -> None:
    """Check every CCM_* setting and print those in effect, secrets masked."""
    config = current_app.config
    for name, variable, _default, _meaning in settings.ENVIRONMENT:
        origin = "" if os.environ.get(variable) else "  # default"
        if name == "SECRET_KEY" and origin:
            origin += f", kept in {os.path.join(current_app.instance_path, 'secret_key')}"
        click.echo(f"{variable}={settings.shown(name, config[name])}{origin}")
    problems = _file_problems(config)
    if problem := _database_problem(config["DATABASE_URL"]):
        problems.append(f"CCM_DATABASE_URL: {problem}")
    for problem in problems:
        click.echo(f"ccm: {problem}", err=True)
    for warning in config_checks.base_url_warnings(config["BASE_URL"]):
        click.echo(f"ccm: warning: {warning}", err=True)
    if problems:
        sys.exit(2)


def _database_problem(url: str) -> str | None:
    """Whether the database answers; a SQLite file not made yet is made at first start."""
    path = make_url(url).database if make_url(url).get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not os.path.exists(path):
        if os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
            click.echo("# the database file does not exist yet: the first process makes it")
            return None
        return f"the folder of {path} does not exist or cannot be written"
    state = health.DatabaseProbe(url).problem()
    if state == health.NOT_MIGRATED:
        click.echo("# the database answers; ccm db upgrade (or any process) makes its tables")
        return None
    return state


def _file_problems(config) -> list[str]:
    """The certificate, key and CA files are loaded as the processes will load them."""
    problems = []
    if config["SMTP_TLS_KEY"] and not config["SMTP_TLS_CERT"]:
        problems.append("CCM_SMTP_TLS_KEY: set without CCM_SMTP_TLS_CERT")
    try:
        ingress.tls_context(current_app)
    except (OSError, ssl.SSLError) as error:
        problems.append(f"CCM_SMTP_TLS_CERT: cannot be loaded with its key: {error}")
    if config["TLS_CA_FILE"]:
        try:
            ssl.create_default_context(cafile=config["TLS_CA_FILE"])
        except (OSError, ssl.SSLError) as error:
            problems.append(f"CCM_TLS_CA_FILE: cannot be loaded: {error}")
    return problems


def reporting_upgrade(group: click.Group) -> click.Group:
    """Flask-Migrate's ``db`` group, whose ``upgrade`` also says what it applied."""
    original = group.commands["upgrade"]

    @click.pass_context
    def upgrade(context, **options):
        before = _current_revisions()
        context.invoke(original.callback, **options)
        if not options.get("sql"):
            _report(before, _current_revisions())

    command = click.Command("upgrade", callback=upgrade, params=original.params,
                            help=original.help)
    return click.Group(
        group.name, commands={**group.commands, "upgrade": command}, params=group.params,
        callback=group.callback, help=group.help)


def _current_revisions() -> tuple[str, ...]:
    with db.engine.connect() as connection:
        return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def _report(before: tuple[str, ...], after: tuple[str, ...]) -> None:
    migrate = current_app.extensions["migrate"]
    scripts = ScriptDirectory.from_config(migrate.migrate.get_config(migrate.directory))
    if before == after:
        at = ", ".join(after) or "no revision"
        heads = tuple(sorted(scripts.get_heads()))
        click.echo(f"already at head {at}" if after == heads else f"nothing to apply: at {at}")
        return
    applied = list(scripts.iterate_revisions(after, before or "base"))
    for script in reversed(applied):
        click.echo(f"applied {script.revision}: {script.doc}")


#: seconds ``ccm status`` waits for an answer
STATUS_TIMEOUT = 5
#: what ``ccm status`` can ask about, in the order it answers
PARTS = ("database", "smtp", "worker")


@click.command("status")
@click.argument("parts", nargs=-1, type=click.Choice(PARTS))
def status(parts: tuple[str, ...]) -> None:
    """Whether the database answers, the SMTP ingress greets, and a worker delivers:
    one line each, status 0 when all asked about are well, 1 otherwise (for a process
    manager's or a container's health check: ``ccm status smtp``)."""
    config = current_app.config
    asks = {"database": lambda: health.DatabaseProbe(config["DATABASE_URL"]).problem(),
            "smtp": lambda: _smtp_problem(config["SMTP_LISTEN"]),
            "worker": lambda: _worker_problem(config["WORKER_INTERVAL"])}
    problems = 0
    for part in parts or PARTS:
        problem = asks[part]()
        click.echo(f"{part}: {problem or 'ok'}")
        problems += problem is not None
    if problems:
        sys.exit(1)


def _smtp_problem(listen: str) -> str | None:
    """The ingress's greeting at CCM_SMTP_LISTEN (any address: asked on loopback)."""
    host, port = settings.smtp_listener(listen)
    # a listener on every address is asked on loopback, not "connected to 0.0.0.0"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    try:
        with socket.create_connection((host, port), timeout=STATUS_TIMEOUT) as server:
            server.settimeout(STATUS_TIMEOUT)
            greeting = server.recv(512).decode("ascii", "replace")
            server.sendall(b"QUIT\r\n")
    except OSError as error:
        return f"does not answer at {listen}: {error.strerror or error}"
    if not greeting.startswith("220"):
        return f"answers at {listen} without greeting: {greeting.strip()[:80]!r}"
    return None


def _worker_problem(interval: int) -> str | None:
    """A worker runs the ``deliver`` job every CCM_WORKER_INTERVAL seconds: none has run
    it for three intervals (a minute at least) means no worker is delivering."""
    try:
        job = db.session.get(Job, "deliver")
    except SQLAlchemyError as error:
        return f"cannot be asked: the database does not answer ({type(error).__name__})"
    finally:
        db.session.rollback()
    allowed = timedelta(seconds=max(3 * interval, 60))
    if job is None or job.last_finished_at is None:
        return "no worker has delivered yet"
    if clock.utcnow() - job.last_finished_at > allowed:
        return (f"no delivery run since {job.last_finished_at:%Y-%m-%d %H:%M:%S} UTC "
                f"(a worker runs one every {interval} s)")
    return None
