"""The ``ccm`` command: a Flask CLI group, so ``flask`` conventions hold."""

from __future__ import annotations

import sys

import click
import waitress
from flask import Flask, current_app
from flask.cli import FlaskGroup

from . import accounts, config_file, database
from .extensions import db


def main() -> None:
    """Entry point of the ``ccm`` console script."""
    from . import create_app

    FlaskGroup(
        create_app=lambda: create_app(),
        help="Closed Circuit Messaging: the secure-mail gateway and portal.",
    )()


def register(app: Flask) -> None:
    """Attach the commands to ``app.cli`` (Flask-Migrate adds ``db`` itself)."""
    app.cli.add_command(serve)
    app.cli.add_command(web)
    app.cli.add_command(config_group)


def _start_portal(*, threads: int) -> None:
    listen = current_app.config["HTTP_LISTEN"]
    server = waitress.create_server(current_app._get_current_object(), listen=listen,
                                    threads=threads, ident="ccm",
                                    clear_untrusted_proxy_headers=True)
    public = current_app.config["BASE_URL"]
    click.echo(f"CCM portal listening on http://{listen} (public address {public})")
    server.run()


@click.command()
def serve() -> None:
    """Run everything in one process: the portal, on CCM_HTTP_LISTEN."""
    database.upgrade()
    created = accounts.create_first_administrator()
    db.session.commit()
    if created:
        user, password = created
        click.echo(
            "\nNo administrator existed, so one was created. Sign in once with:\n"
            f"  address:  {user.email}\n  password: {password}\n"
            "You will be asked to choose a new password. This password is not shown again.\n"
        )
    _start_portal(threads=8)


@click.command()
@click.option("--threads", default=16, show_default=True, help="Requests served at once.")
def web(threads: int) -> None:
    """Run the portal only, for scale-out behind a load balancer."""
    database.upgrade()
    _start_portal(threads=threads)


@click.group("config")
def config_group() -> None:
    """Import or export tenants, domains, users and application settings."""


@config_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
def config_import(file) -> None:
    """Create or update what FILE describes; nothing is written if any of it is wrong."""
    try:
        result = config_file.import_text(file.read())
        db.session.commit()
    except config_file.ConfigFileError as error:
        db.session.rollback()
        click.echo(f"{file.name}: not imported, nothing was changed:", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    click.echo(f"{file.name}: {result.created} created, {result.updated} updated.")
    for slug, email, password in result.generated:
        click.echo(f"  new password for {email} at {slug}: {password}"
                   " (must be changed at first sign-in)")


@config_group.command("export")
def config_export() -> None:
    """Print the configuration as YAML (passwords are never exported)."""
    click.echo(config_file.export_text(), nl=False)
