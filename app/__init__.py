"""Closed Circuit Messaging: the application factory."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from app import clock, metrics
from app import config as settings
from app.domain import composing, config_checks
from app.extensions import csrf, db, htmx, limiter, login_manager, migrate
from app.web import health, inputs, monitoring, proxies, static_files

MIGRATIONS = str(Path(__file__).parent / "migrations")


def default_instance_path() -> str:
    """``CCM_INSTANCE_PATH``, else ``instance/`` in the working directory."""
    return os.path.abspath(os.environ.get("CCM_INSTANCE_PATH") or "instance")


def create_app(overrides: dict | None = None, instance_path: str | None = None) -> Flask:
    """Build the portal application: defaults, then the environment, then ``overrides``."""
    instance_path = instance_path or default_instance_path()
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.url_map.converters["int"] = inputs.IdConverter  # before any route is added
    os.makedirs(instance_path, exist_ok=True)
    app.config.from_mapping(settings.load(instance_path, checks=config_checks.SETTING_CHECKS))
    app.config["PASSWORD_HASH"] = settings.PASSWORD_HASH
    # Room in a multipart form for the composer's longest message text at 4 bytes a
    # character (Werkzeug's default is 500 kB), so that its own limit is what speaks.
    app.config["MAX_FORM_MEMORY_SIZE"] = composing.MAX_BODY * 4 + 64 * 1024
    if overrides:
        app.config.update(overrides)
        app.config.update(settings.database_settings(app.config))

    # Every process of the installation counts into one directory (app/metrics.py).
    metrics.configure(app.config["METRICS_DIR"])
    monitoring.register(app)  # first of the request hooks: the others' time counts
    app.wsgi_app = monitoring.MetricsEndpoint(
        app.wsgi_app, app, settings.networks(app.config["METRICS_NETWORKS"]))
    app.wsgi_app = proxies.TrustedProxies(app.wsgi_app, app.config["PROXY_HOPS"],
                                          settings.networks(app.config["PROXY_NETWORKS"]))
    # Outermost: a probe is answered before anything else of the portal runs.
    app.wsgi_app = health.Probes(app.wsgi_app, app.config["DATABASE_URL"])

    from app import database

    database.configure_sqlite()
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS, render_as_batch=True)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    inputs.register(app)  # before the blueprints' own hooks read anything
    static_files.register(app)  # fingerprinted, cached for a year, compressed

    from app.web import admin, auth, compose, errors, filters, inbox, languages, security
    from app.web.mail_clients import bp as mail_clients_bp

    app.register_blueprint(auth.bp)
    app.register_blueprint(inbox.bp)
    app.register_blueprint(compose.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(mail_clients_bp)
    languages.register(app)
    errors.register(app)
    filters.register(app)
    app.context_processor(lambda: {"site_name": app.config["SITE_NAME"], "now": clock.utcnow()})
    security.register(app)

    from app import cli

    cli.register(app)
    return app
