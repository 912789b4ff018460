"""Configuration: every setting, its default and its environment variable, in one place.

Order of precedence (Flask's tutorial pattern): these defaults, then the ``CCM_*``
environment, then the overrides a caller (the test suite) passes to ``create_app``.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from flask import current_app
from sqlalchemy.engine import make_url

from app import config_values as values

#: (setting, environment variable, default, meaning).  Defaults that depend on the
#: instance folder are filled in by :func:`load` and shown here as ``None``.
ENVIRONMENT = [
    ("DATABASE_URL", "CCM_DATABASE_URL", None,
     "SQLAlchemy URL; default a SQLite file in instance/"),
    ("SECRET_KEY", "CCM_SECRET_KEY", None,
     "session and token signing; default generated once and kept in instance/secret_key"),
    ("BASE_URL", "CCM_BASE_URL", "http://127.0.0.1:8000",
     "the portal's public URL, used in links in generated mail"),
    ("HTTP_LISTEN", "CCM_HTTP_LISTEN", "127.0.0.1:8000", "portal address"),
    ("SMTP_LISTEN", "CCM_SMTP_LISTEN", "127.0.0.1:2525", "SMTP ingress address"),
    ("RELAY_NETWORKS", "CCM_RELAY_NETWORKS", "127.0.0.0/8,::1/128",
     "client networks allowed to relay without AUTH"),
    ("OUTBOUND", "CCM_OUTBOUND", None,
     "how mail leaves: mx, smtp://host:port or maildir:PATH; default maildir:instance/outbox"),
    ("INTERNAL_RELAY", "CCM_INTERNAL_RELAY", None,
     "where mail for internal recipients goes; default the same as CCM_OUTBOUND"),
    ("DNS_SERVERS", "CCM_DNS_SERVERS", "",
     "host[:port],... for looking up MX and relay hosts; empty: system"),
    ("SMTP_DELIVERY_PORT", "CCM_SMTP_DELIVERY_PORT", "25", "port for MX delivery"),
    ("MX_ALLOWED_NETWORKS", "CCM_MX_ALLOWED_NETWORKS", "",
     "non-public networks an MX host may be in (a closed network's own); default none"),
    ("TENANT_RELAY_ALLOWED_NETWORKS", "CCM_TENANT_RELAY_ALLOWED_NETWORKS", "",
     "non-public networks a tenant administrator may put the internal relay in; default none"),
    ("MAX_MESSAGE_BYTES", "CCM_MAX_MESSAGE_BYTES", "52428800", "largest message accepted"),
    ("MAX_RECIPIENTS", "CCM_MAX_RECIPIENTS", "1000",
     "recipients one message may have by SMTP; the next RCPT gets 452 (RFC 5321 4.5.3.1.8)"),
    ("HOP_LIMIT", "CCM_HOP_LIMIT", "50",
     "Received: lines a message may already carry; one with more is refused as a loop"),
    ("RATELIMIT_STORAGE_URI", "CCM_RATELIMIT_STORAGE", "memory://",
     "Flask-Limiter storage; use redis://... when several web processes run"),
    ("RATELIMIT_PREFIX", "CCM_RATELIMIT_PREFIX", "ccm",
     "start of the throttling counters' keys in Redis, to keep deployments sharing one apart"),
    ("PROXY_HOPS", "CCM_PROXY_HOPS", "0",
     "reverse proxies in front of the portal whose X-Forwarded-* headers are trusted"),
    ("PROXY_NETWORKS", "CCM_PROXY_NETWORKS", "127.0.0.1/32,::1/128",
     "where the nearest of those proxies connects from; others' X-Forwarded-* are dropped"),
    ("RETRY_FIRST_SECONDS", "CCM_RETRY_FIRST_SECONDS", "300",
     "first retry of a temporary delivery failure; each further one waits twice as long"),
    ("RETRY_MAX_SECONDS", "CCM_RETRY_MAX_SECONDS", "3600", "longest wait between tries"),
    ("RETRY_GIVE_UP_SECONDS", "CCM_RETRY_GIVE_UP_SECONDS", "432000",
     "age at which a message still not delivered bounces (5 days, as RFC 5321 suggests)"),
    ("SMTP_TIMEOUT", "CCM_SMTP_TIMEOUT", "60", "seconds to wait for a remote SMTP server"),
    ("SMTP_IDLE_TIMEOUT", "CCM_SMTP_IDLE_TIMEOUT", "300",
     "seconds the ingress waits for a client to send anything (Postfix's smtpd_timeout)"),
    ("SMTP_MIN_DATA_RATE", "CCM_SMTP_MIN_DATA_RATE", "8192",
     "bytes a second: DATA may last as long as the largest message takes at this rate"),
    ("SMTP_STORE_TIMEOUT", "CCM_SMTP_STORE_TIMEOUT", "30",
     "seconds the ingress waits for the database to store a message, then answers 451"),
    ("SMTP_STORE_THREADS", "CCM_SMTP_STORE_THREADS", "2",
     "on PostgreSQL, threads of a `ccm smtp` process that store received messages: one "
     "receives a group while the others commit theirs, at once; more help where a COMMIT "
     "waits long (a slow disk, a distant database). SQLite always has 1: it writes one "
     "transaction at a time"),
    ("DATABASE_CONNECT_TIMEOUT", "CCM_DATABASE_CONNECT_TIMEOUT", "10",
     "seconds to wait for a connection to PostgreSQL"),
    ("DATABASE_STATEMENT_TIMEOUT", "CCM_DATABASE_STATEMENT_TIMEOUT", "30",
     "seconds a PostgreSQL statement may run"),
    ("DATABASE_LOCK_TIMEOUT", "CCM_DATABASE_LOCK_TIMEOUT", "10",
     "seconds a statement waits for a lock (PostgreSQL) or for the write lock (SQLite)"),
    ("HELO_NAME", "CCM_HELO_NAME", "",
     "name given in EHLO when delivering and in the Received: line; default the FQDN"),
    ("TLS_CA_FILE", "CCM_TLS_CA_FILE", "",
     "CA bundle for verifying MX certificates; default the system's"),
    ("SMTP_TLS_CERT", "CCM_SMTP_TLS_CERT", "",
     "certificate (PEM) the ingress offers with STARTTLS; SMTP AUTH needs it"),
    ("SMTP_TLS_KEY", "CCM_SMTP_TLS_KEY", "", "its private key (PEM)"),
    ("WORKER_INTERVAL", "CCM_WORKER_INTERVAL", "5",
     "seconds between outbound queue runs (mail that falls due meanwhile starts one at once)"),
    ("DELIVERY_THREADS", "CCM_DELIVERY_THREADS", "8",
     "deliveries a worker makes at once (each holds a database connection: the "
     "engine's pool has 15)"),
    ("DESTINATION_CONCURRENCY", "CCM_DESTINATION_CONCURRENCY", "4",
     "of those, how many may go to one recipient domain at once, in each worker process "
     "(Postfix's default_destination_concurrency_limit); never all of them: one thread is "
     "always left for other domains"),
    ("SHUTDOWN_GRACE", "CCM_SHUTDOWN_GRACE", "30",
     "seconds a stopping process lets work in progress finish (deliveries, DATA, requests)"),
    ("SITE_NAME", "CCM_SITE_NAME", "Secure Mail", "the portal's name where no tenant is known"),
    ("LOG_FORMAT", "CCM_LOG_FORMAT", "text",
     "`text` (time, process id, level, logger, message) or `json` (one object a line)"),
    ("LOG_LEVEL", "CCM_LOG_LEVEL", "INFO",
     "the least severe messages logged: DEBUG, INFO, WARNING or ERROR"),
    ("METRICS_DIR", "CCM_METRICS_DIR", None,
     "where every process writes its Prometheus counts; default instance/metrics"),
    ("METRICS_NETWORKS", "CCM_METRICS_NETWORKS", "127.0.0.0/8,::1/128",
     "client networks that may read the portal's /metrics; others get 404"),
    ("MAIL_FROM", "CCM_MAIL_FROM", "",
     "From address of generated mail; default postmaster@ the portal's host name"),
]

#: whole-number settings: the least and the most each may be (None: no limit)
INTEGER_SETTINGS = {"SMTP_DELIVERY_PORT": (1, 65535), "MAX_MESSAGE_BYTES": (1, None),
                    "MAX_RECIPIENTS": (1, None), "HOP_LIMIT": (1, None),
                    "PROXY_HOPS": (0, 16), "RETRY_FIRST_SECONDS": (1, None),
                    "RETRY_MAX_SECONDS": (1, None), "RETRY_GIVE_UP_SECONDS": (1, None),
                    "SMTP_TIMEOUT": (1, None), "WORKER_INTERVAL": (1, None),
                    "DELIVERY_THREADS": (1, 256),
                    "DESTINATION_CONCURRENCY": (1, 256), "SMTP_IDLE_TIMEOUT": (1, None),
                    "SHUTDOWN_GRACE": (0, None),
                    "SMTP_MIN_DATA_RATE": (1, None), "SMTP_STORE_TIMEOUT": (1, None),
                    "SMTP_STORE_THREADS": (1, 12),
                    "DATABASE_CONNECT_TIMEOUT": (1, None),
                    "DATABASE_STATEMENT_TIMEOUT": (1, None), "DATABASE_LOCK_TIMEOUT": (1, None)}
#: lists of networks: one that cannot be read stops the start, not a request or a delivery
NETWORK_SETTINGS = {"RELAY_NETWORKS", "MX_ALLOWED_NETWORKS", "TENANT_RELAY_ALLOWED_NETWORKS",
                    "PROXY_NETWORKS", "METRICS_NETWORKS"}
#: settings whose value is a secret: ``ccm config check`` never shows them
SECRET_SETTINGS = {"SECRET_KEY"}


class ConfigError(ValueError):
    """Settings cannot be read: ``problems`` has one line for each, naming its variable
    and saying why."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def load(instance_path: str, environ: os._Environ | dict | None = None,
         checks: dict | None = None) -> dict:
    """Return the configuration mapping for an application using ``instance_path``.

    Every setting is read by its check (:data:`CHECKS`, and ``checks`` for those whose
    grammar lives in a layer above this module): ConfigError lists every one that
    cannot be read, so a process refuses to start rather than fail later on a page or
    a delivery.
    """
    environ = os.environ if environ is None else environ
    checks = {**CHECKS, **(checks or {})}
    instance = Path(instance_path)
    config: dict = {}
    problems = []
    for name, variable, default, _meaning in ENVIRONMENT:
        value = environ.get(variable) or default
        if value not in (None, "") and name in checks:
            try:
                value = checks[name](value)
            except ValueError as error:
                problems.append(f"{variable}: {error}")
        config[name] = value
    if problems:
        raise ConfigError(problems)

    config["DATABASE_URL"] = config["DATABASE_URL"] or f"sqlite:///{instance / 'ccm.sqlite3'}"
    config["OUTBOUND"] = config["OUTBOUND"] or f"maildir:{instance / 'outbox'}"
    config["INTERNAL_RELAY"] = config["INTERNAL_RELAY"] or config["OUTBOUND"]
    config["METRICS_DIR"] = config["METRICS_DIR"] or str(instance / "metrics")
    config["SECRET_KEY"] = config["SECRET_KEY"] or _instance_secret(instance)
    config.update(_derived(config))
    return config


@dataclass(frozen=True)
class Settings:
    """The settings the domain and the delivery read, typed: they ask :func:`settings`
    rather than Flask's ``current_app.config``. A field is named after its setting."""

    base_url: str
    https: bool
    max_message_bytes: int
    mail_from: str
    password_hash: Mapping
    helo_name: str
    hop_limit: int
    site_name: str


def settings() -> Settings:
    """The running application's settings, read afresh (a test may have changed one)."""
    config = current_app.config
    return Settings(**{name: config[name.upper()] for name in Settings.__dataclass_fields__})


def smtp_listener(listen: str) -> tuple[str, int]:
    """The host and port the ingress listens on, as it reads CCM_SMTP_LISTEN
    (``host:port`` or ``[v6]:port``; no host is 127.0.0.1)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)  # ValueError without a port


def networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A setting's comma-separated list of addresses or networks, the one way every
    part of CCM reads such a list; ValueError names the first that is neither."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())


def shown(name: str, value) -> str:
    """A setting as ``ccm config check`` prints it: a secret masked, and so is the
    password in any URL (a database's, Redis's)."""
    if value is None or value == "":
        return ""
    if name in SECRET_SETTINGS or "PASSWORD" in name or ("DKIM" in name and "KEY" in name):
        return "********"
    text = str(value)
    parts = urlsplit(text) if "://" in text else None
    if parts is None:
        return text
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is None and not any("password" in key.lower() for key, _ in pairs):
        return text
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = "&".join(f"{key}=***" if "password" in key.lower() else f"{key}={item}"
                     for key, item in pairs)
    return parts._replace(netloc=netloc, query=query).geturl()


def database_settings(config: Mapping) -> dict:
    """Flask-SQLAlchemy's settings for ``config``'s database and its timeouts."""
    url = make_url(config["DATABASE_URL"])
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite:
        # sqlite3's timeout is SQLite's busy timeout: how long a writer waits its turn.
        connect_args = {"timeout": config["DATABASE_LOCK_TIMEOUT"]}
    elif url.get_backend_name() == "postgresql":
        connect_args = postgresql_timeouts(config, url.query.get("options"))
    else:
        connect_args = {}
    return {
        "SQLALCHEMY_DATABASE_URI": config["DATABASE_URL"],
        # A server may have closed a pooled connection (restart, idle timeout); a SQLite
        # file cannot, so it is spared the ping on every checkout.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": not sqlite, "connect_args": connect_args},
    }


#: seconds a PostgreSQL session may sit in an open transaction doing nothing, after which
#: the server ends it and frees its locks (a process that vanished mid-transaction); long,
#: as a download streams an attachment in slices inside one transaction
IDLE_IN_TRANSACTION_SECONDS = 600
#: TCP keepalive: a server gone silent (a cut network) is noticed after about a minute
#: rather than the system's two hours; also the longest sent data may go unacknowledged
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
             "keepalives_count": 3, "tcp_user_timeout": 60_000}


def postgresql_timeouts(config: Mapping, options: str | None = None) -> dict:
    """libpq connection parameters that bound every wait on PostgreSQL: the connection,
    each statement, each lock; ``options`` from the URL are kept, ours follow them."""
    settings = {
        "statement_timeout": config["DATABASE_STATEMENT_TIMEOUT"] * 1000,
        "lock_timeout": config["DATABASE_LOCK_TIMEOUT"] * 1000,
        "idle_in_transaction_session_timeout": IDLE_IN_TRANSACTION_SECONDS * 1000,
    }
    ours = " ".join(f"-c {name}={value}" for name, value in settings.items())
    return {"connect_timeout": config["DATABASE_CONNECT_TIMEOUT"],
            "options": f"{options} {ours}" if options else ours, **KEEPALIVE}


def _derived(config: dict) -> dict:
    """Settings that follow from others rather than from the environment."""
    https = config["BASE_URL"].startswith("https://")
    return {
        **database_settings(config),
        # Uploads arrive raw and leave base64-encoded (a third larger): accept a request
        # big enough for a full message (app/domain/composing.py checks the message itself).
        "MAX_CONTENT_LENGTH": config["MAX_MESSAGE_BYTES"] * 4 // 3 + 1024 * 1024,
        # The __Host- prefix pins the cookie to this exact origin; browsers accept it
        # only over HTTPS, so a plain-HTTP default install uses an ordinary name.
        "SESSION_COOKIE_NAME": "__Host-ccm_session" if https else "ccm_session",
        "SESSION_COOKIE_SECURE": https,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": SESSION_ABSOLUTE_TIMEOUT,
        # The server ends a session 12 hours after sign-in whatever the cookie says
        # (app/domain/auth_sessions.py), so re-signing the cookie on every answer buys nothing.
        "SESSION_REFRESH_EACH_REQUEST": False,
        "PREFERRED_URL_SCHEME": "https" if https else "http",
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session does
        "WTF_CSRF_SSL_STRICT": https,
        "RATELIMIT_HEADERS_ENABLED": False,
        **_ratelimit_storage(config),
        "HTTPS": https,
    }


#: How long a request waits for Redis before counting in memory instead: a Redis that
#: stops answering must not hold sign-ins up (redis-py by default waits for ever).
REDIS_TIMEOUT_SECONDS = 1


def _ratelimit_storage(config: dict) -> dict:
    """Flask-Limiter's settings for ``CCM_RATELIMIT_STORAGE``.

    While the storage cannot be reached, each process counts in its own memory, with the
    same limits, and goes back to the storage once it answers again: sign-in neither
    fails nor goes unthrottled. Flask-Limiter logs the switch once, not each request.
    """
    settings: dict = {"RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True}
    if urlsplit(config["RATELIMIT_STORAGE_URI"]).scheme.startswith(("redis", "valkey")):
        settings["RATELIMIT_STORAGE_OPTIONS"] = {
            "key_prefix": config["RATELIMIT_PREFIX"],
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
        }
    return settings


#: A session ends after this long without a request...
SESSION_IDLE_TIMEOUT = timedelta(minutes=30)
#: ...and after this long whatever happens (ASVS 3.3.2).
SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=12)
#: How long a password-reset link stays usable.
RESET_LINK_LIFETIME = timedelta(hours=1)
#: argon2id parameters: RFC 9106's second recommendation, well above ASVS's floor
#: (19 MiB, 2 iterations, 1 lane).
PASSWORD_HASH = {"time_cost": 3, "memory_cost": 64 * 1024, "parallelism": 4}


def _instance_secret(instance: Path) -> str:
    """The key kept in ``instance/secret_key``, created on first use.

    The key is written to a private temporary file and hard-linked into place, which
    either succeeds whole or fails because another process got there first: processes
    starting together agree on one key and never read a half-written file.
    """
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if not path.exists():
        fd, temporary = tempfile.mkstemp(dir=instance, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


def _network_list(text: str) -> str:
    networks(text)
    return text


#: how each setting is read; the others are texts taken as they are
CHECKS = {
    **{name: values.whole_number(*bounds) for name, bounds in INTEGER_SETTINGS.items()},
    **dict.fromkeys(NETWORK_SETTINGS, _network_list),
    "DATABASE_URL": values.database_url,
    "BASE_URL": values.web_address,
    "HTTP_LISTEN": values.listen(several=True),  # waitress listens on several at once
    "SMTP_LISTEN": values.listen(several=False),
    "DNS_SERVERS": values.dns_servers,
    "RATELIMIT_STORAGE_URI": values.rate_limit_storage,
    "HELO_NAME": values.host_name,
    "MAIL_FROM": values.mail_address,
    "LOG_FORMAT": values.one_of("text", "json"),
    "LOG_LEVEL": values.one_of("DEBUG", "INFO", "WARNING", "ERROR"),
}
