"""The ``ccm`` command: a Flask CLI group, so ``flask`` conventions hold."""

from __future__ import annotations

import contextlib
import getpass
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup
from sqlalchemy.exc import OperationalError

from app import config as settings
from app import database, logs, operations, worker
from app.delivery import outbox
from app.domain import accounts, config_checks, config_file, ingest, outbound_queue
from app.extensions import db
from app.mail import terminal
from app.models import Job, OutboundItem, QueueState, Tenant
from app.smtp import ingress
from app.smtp import processes as smtp_processes
from app.web import serving


def _say(text: str, **options) -> None:
    """Print text that holds anything from mail (a subject, an address, a body, a remote
    server's reply): its control characters as visible escapes, never obeyed by the
    operator's terminal (app/mail/terminal.py)."""
    click.echo(terminal.printable(text), **options)


def main() -> None:
    """Entry point of the ``ccm`` console script."""
    try:
        FlaskGroup(
            create_app=_create_app,
            help="Closed Circuit Messaging: the secure-mail gateway and portal.",
        )()
    except OperationalError as error:
        # A database that is down at start is the operator's to fix: one line, not a
        # traceback (a process manager starts the command again later).
        reason = str(error.orig or error).strip().splitlines()
        click.echo(f"ccm: database: {reason[0] if reason else error}", err=True)
        sys.exit(1)


def _create_app() -> Flask:
    """The application, or a one-line message and exit status 2 when a setting is wrong
    (an operator reads what to fix, not a traceback)."""
    from app import create_app

    try:
        app = create_app()
    except settings.ConfigError as error:
        for problem in error.problems:
            click.echo(f"ccm: {problem}", err=True)
        sys.exit(2)
    logs.configure(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
    return app


def register(app: Flask) -> None:
    """Attach the commands to ``app.cli`` (Flask-Migrate adds ``db`` itself)."""
    for command in (serve, web, smtp, worker_command, jobs_group, send, config_group,
                    queue_group, outbox_group):
        app.cli.add_command(command)
    app.cli.add_command(operations.reporting_upgrade(app.cli.commands["db"]))
    app.cli.add_command(operations.status)


#: waitress's own default. With more, Python threads contend for the interpreter lock:
#: on 2 cores under 8 connections the inbox's p95 was 37 ms with 4 and 52 ms with 8 or
#: 16 (bench/README.md). A slow client does not hold a thread: waitress buffers the
#: response (on disk past 1 MiB) unless over 16 MiB of it is still unsent.
PORTAL_THREADS = 4


def _portal(*, threads: int = PORTAL_THREADS) -> serving.Portal:
    listen = current_app.config["HTTP_LISTEN"]
    portal = serving.Portal(current_app._get_current_object(), listen=listen,
                            threads=threads)
    public = current_app.config["BASE_URL"]
    click.echo(f"CCM portal listening on http://{listen} (public address {public})")
    _warn_at_start()
    return portal


def _warn_at_start() -> None:
    """Log what a portal or worker starts with that makes notifications look suspect."""
    for warning in config_checks.base_url_warnings(current_app.config["BASE_URL"]):
        current_app.logger.warning("%s", warning)


def _start_smtp(share_port: bool = False, sockets: list[socket.socket] | None = None):
    controller = ingress.controller(current_app._get_current_object(), share_port=share_port,
                                    sockets=sockets)
    controller.start()
    click.echo(f"CCM SMTP ingress listening on {current_app.config['SMTP_LISTEN']}")
    return controller


class StopSignal:
    """Whether SIGTERM (or SIGINT) has come, set by the signal handler: a flag and a
    byte in a pipe, never a lock. A handler runs in the main thread between two of its
    steps, perhaps while it holds a lock: ``threading.Event.set`` there waited for the
    lock its own thread held in ``Event.wait``, forever (a ccm smtp process that never
    stopped, still holding the port)."""

    def __init__(self):
        self._set = False
        self._reader, self._writer = os.pipe()
        os.set_blocking(self._writer, False)

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        with contextlib.suppress(BlockingIOError):  # the pipe full: it is readable already
            os.write(self._writer, b"\0")

    def wait(self, timeout: float | None = None) -> bool:
        """Whether it is set, once it is or ``timeout`` seconds have passed."""
        if not self._set:
            select.select([self._reader], [], [], timeout)
        return self._set


def _stop_signal(*wake: Callable[[], None], repeat_ends: bool = True) -> StopSignal:
    """What SIGTERM (or SIGINT, Ctrl-C) sets, calling ``wake`` too (each safe in a
    signal handler); a second signal ends the process at once, status 1, for an
    operator who will not wait (unless not ``repeat_ends``).

    The process then stops gracefully within CCM_SHUTDOWN_GRACE (docs/operations.md,
    "Stopping and restarting"): each command below says how.
    """
    stop = StopSignal()

    def handle(*_) -> None:
        if stop.is_set() and repeat_ends:
            os._exit(1)
        stop.set()
        for call in wake:
            call()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, handle)
    return stop


def _exit(finished: bool) -> None:
    """End the process with status 0. When some work did not end within the grace
    period, without waiting for its threads (Python would join the scheduler's)."""
    click.echo("CCM stopped")
    if not finished:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@click.command()
def serve() -> None:
    """Run everything in one process: portal, SMTP ingress and background worker."""
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
    app = current_app._get_current_object()
    controller = _start_smtp()
    portal = _portal()
    stop = _stop_signal(portal.wake)
    jobs = worker.scheduler(app, blocking=False)
    jobs.start()
    portal.serve_until(stop.is_set)
    # All three stop at once, each within the grace period.
    grace = app.config["SHUTDOWN_GRACE"]
    with ThreadPoolExecutor(2) as stopping:
        smtp_stopped = stopping.submit(controller.shut_down, grace)
        worker_stopped = stopping.submit(worker.stop, app, jobs, grace)
        portal.drain(grace)
        smtp_stopped.result()
        finished = worker_stopped.result()
    _exit(finished)


@click.command()
@click.option("--threads", default=PORTAL_THREADS, show_default=True,
              help="Requests served at once.")
def web(threads: int) -> None:
    """Run the portal only, for scale-out behind a load balancer."""
    database.upgrade()
    portal = _portal(threads=threads)
    portal.serve_until(_stop_signal(portal.wake).is_set)
    portal.drain(current_app.config["SHUTDOWN_GRACE"])
    _exit(True)


@click.command()
@click.option("--processes", type=click.IntRange(0, smtp_processes.MOST), default=0,
              help="Processes receiving on the port together (default 0: one a core, "
                   f"at most {smtp_processes.MOST}).")
@click.option("--share-port", is_flag=True,
              help="Also share the listening port with other `ccm smtp --share-port` "
                   "commands of this user (their processes add to these).")
@click.option("--sibling-of", type=int, hidden=True)
@click.option("--listening", type=int, multiple=True, hidden=True)
def smtp(processes: int, share_port: bool, sibling_of: int | None,
         listening: tuple[int, ...]) -> None:
    """Run the SMTP ingress only, for scale-out: one process a core."""
    count = processes or smtp_processes.default_count()
    if sibling_of is not None:  # started by the first process, which upgraded the database
        smtp_processes.follow_first(sibling_of)
    else:
        database.upgrade()
    # a sibling lets the first decide when it is stopped at once (repeated signals reach
    # it from the terminal, the first and systemd together); it still stops within the grace
    stop = _stop_signal(repeat_ends=sibling_of is None)
    current_app.config["SMTP_PROCESSES"] = count
    # a sibling accepts from the first's sockets, handed down to it
    controller = _start_smtp(share_port, [socket.socket(fileno=fd) for fd in listening])
    siblings = smtp_processes.Siblings(count - 1 if sibling_of is None else 0,
                                       controller.listening(), first=sibling_of is None)
    siblings.start()
    while not stop.wait(1.0):
        siblings.keep_up()
    # one grace for them all, from the stop: the service manager waits no longer
    grace = current_app.config["SHUTDOWN_GRACE"]
    deadline = time.monotonic() + grace
    siblings.stop()
    siblings.let_go()
    controller.shut_down(grace)
    siblings.wait(deadline)
    _exit(True)


@click.command("worker")
def worker_command() -> None:
    """Run the background worker only: outbound queue, expiry, clean-ups."""
    database.upgrade()
    app = current_app._get_current_object()
    stop = _stop_signal()
    jobs = worker.scheduler(app, blocking=False)
    jobs.start()
    click.echo("CCM worker started")
    _warn_at_start()
    stop.wait()
    _exit(worker.stop(app, jobs, app.config["SHUTDOWN_GRACE"]))


@click.group("jobs", invoke_without_command=True)
@click.pass_context
def jobs_group(context) -> None:
    """Show the background jobs, their last run, duration and result."""
    if context.invoked_subcommand:
        return
    database.upgrade()
    app = current_app._get_current_object()
    for name, schedule in worker.jobs(app).items():
        job = db.session.get(Job, name)
        last = "never run"
        if job and job.last_started_at:
            state = "running" if (job.lease_until and not job.last_finished_at) or (
                job.last_finished_at and job.last_finished_at < job.last_started_at) else (
                "ok" if job.last_ok else "FAILED")
            last = (f"last run {job.last_started_at:%Y-%m-%d %H:%M:%S} UTC, "
                    f"{job.last_duration_ms or 0} ms, {state}: {job.last_result}")
        click.echo(f"{name:<8} every {schedule.seconds:>5} s  {schedule.description}\n"
                   f"         {last}")


@jobs_group.command("run")
@click.argument("name")
def jobs_run(name: str) -> None:
    """Run job NAME now."""
    database.upgrade()
    app = current_app._get_current_object()
    if name not in worker.jobs(app):
        raise click.BadParameter(f"no job {name!r}; the jobs are "
                                 f"{', '.join(worker.jobs(app))}", param_hint="NAME")
    result = worker.run_job(app, name)
    if result is None:
        click.echo(f"{name} is running in another process right now; try again later.")
        sys.exit(1)
    click.echo(f"{name}: {result}")


@click.command()
@click.argument("file", type=click.File("rb"))
@click.option("--mail-from", required=True, help="Envelope sender, at a tenant's domain.")
@click.option("--rcpt", "rcpts", required=True, multiple=True, help="A recipient; repeat.")
def send(file, mail_from: str, rcpts: tuple[str, ...]) -> None:
    """Inject FILE.eml as if it had arrived by SMTP."""
    database.upgrade()
    try:
        message = ingest.receive(file.read(), mail_from, list(rcpts), via="command line",
                                 client_address="ccm send")
        db.session.commit()
    except ingest.Refused as refused:
        db.session.rollback()
        _say(f"refused: {refused.reply}", err=True)
        sys.exit(1)
    for recipient in message.recipients:
        _say(f"{recipient.address}: {recipient.route} ({recipient.reason})")


@click.group("config")
def config_group() -> None:
    """Import or export tenants, domains, users and application settings."""


config_group.add_command(operations.config_check)


@config_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--dry-run", is_flag=True,
              help="Check FILE and list what importing it would change; write nothing.")
def config_import(file, dry_run: bool) -> None:
    """Create or update what FILE describes; nothing is written if any of it is wrong."""
    if not dry_run:
        database.upgrade()
    try:
        result = config_file.import_text(file.read())
        changes = config_file.pending_changes() if dry_run else []
        db.session.rollback() if dry_run else db.session.commit()
    except config_checks.ConfigFileError as error:
        db.session.rollback()
        click.echo(f"{file.name}: not imported, nothing was changed:", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    if dry_run:
        click.echo(f"{file.name}: valid; importing it would make {len(changes) or 'no'} "
                   f"change(s). Nothing was written.")
        for change in changes:
            click.echo(f"  {change}")
        return
    click.echo(f"{file.name}: {result.created} created, {result.updated} updated.")
    for slug, email, password in result.generated:
        click.echo(f"  new password for {email} at {slug}: {password}"
                   " (must be changed at first sign-in)")


@config_group.command("export")
def config_export() -> None:
    """Print the configuration as YAML (passwords are never exported)."""
    click.echo(config_file.export_text(), nl=False)


@click.group("queue")
def queue_group() -> None:
    """The outbound queue."""


def _operator() -> str:
    """Who the audit log names for a queue command: the system user at the console."""
    return f"operator {getpass.getuser()} (ccm)"


def _tenant(slug: str) -> Tenant:
    tenant = db.session.query(Tenant).filter_by(slug=slug).one_or_none()
    if tenant is None:
        raise click.ClickException(f"no tenant {slug!r}")
    return tenant


def _report(action: str, changed: list[OutboundItem]) -> None:
    db.session.commit()
    click.echo(f"{action}: {len(changed)} item(s)"
               + (f" ({', '.join(str(i.id) for i in changed)})" if changed else ""))


def _items(ids: tuple[int, ...], every: bool) -> list[int] | None:
    if bool(ids) == every:
        raise click.UsageError("name the items, or give --all")
    database.upgrade()
    return None if every else list(ids)


@queue_group.command("list")
@click.option("--state", type=click.Choice([str(s) for s in QueueState]),
              help="Only items in this state (default: every one not finished).")
@click.option("--tenant", "slug", help="Only this tenant's items.")
def queue_list(state: str | None, slug: str | None) -> None:
    """List the queue, oldest first, as postqueue -p does."""
    database.upgrade()
    tenant = _tenant(slug) if slug else None
    items = outbound_queue.listing(state=state, tenant=tenant)
    for item in items:
        due = f" due {item.next_attempt_at:%Y-%m-%d %H:%M}" \
            if item.state == QueueState.PENDING else ""
        _say(f"{item.id:>8} {item.state:<8} {item.kind:<12} "
             f"{item.tenant.slug if item.tenant else '-':<12} tries {item.attempts}"
             f"{due}  <{item.mail_from}> -> <{item.rcpt_to}>")
        if item.last_error:
            _say(f"{'':>9}({item.last_error})")
    click.echo(f"-- {len(items)} item(s)")


@queue_group.command("show")
@click.argument("item_id", type=int)
def queue_show(item_id: int) -> None:
    """Show one item and its recipient's delivery history."""
    database.upgrade()
    item = db.session.get(OutboundItem, item_id)
    if item is None:
        raise click.ClickException(f"no queue item {item_id}")
    for name in ("id", "kind", "route", "state", "attempts", "mail_from", "rcpt_to",
                 "created_at", "next_attempt_at", "lease_until", "finished_at",
                 "last_error"):
        _say(f"{name + ':':<17}{getattr(item, name)}")
    _say(f"{'tenant:':<17}{item.tenant.slug if item.tenant else '-'}")
    if item.recipient is not None:
        message = item.recipient.message
        _say(f"{'message:':<17}{message.public_id} {message.message_id_header}")
        for event in item.recipient.events:
            _say(f"  {event.at:%Y-%m-%d %H:%M:%S} {event.kind:<10} {event.text}")


def _queue_command(name: str, change, help_text: str):
    @queue_group.command(name, help=help_text)
    @click.argument("ids", nargs=-1, type=int)
    @click.option("--all", "every", is_flag=True, help="Every item it applies to.")
    def command(ids: tuple[int, ...], every: bool) -> None:
        _report(name, change(_items(ids, every), by=_operator()))
    return command


_queue_command("retry", outbound_queue.retry,
               "Make items due now (postqueue -f): waiting, set aside, or on hold.")
_queue_command("hold", outbound_queue.hold, "Keep items from being sent (postsuper -h).")
_queue_command("release", outbound_queue.release, "Let items on hold go (postsuper -H).")


@queue_group.command("delete")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every unfinished item.")
@click.option("--bounce", is_flag=True, help="Tell a delivery's sender with a bounce report.")
def queue_delete(ids: tuple[int, ...], every: bool, bounce: bool) -> None:
    """End items unsent (postsuper -d), in the audit log."""
    _report("delete", outbound_queue.delete(_items(ids, every), by=_operator(), bounce=bounce))


@click.group("outbox")
def outbox_group() -> None:
    """The maildir outbox, decoded (where mail goes when no mail server is set up)."""


def _outbox_path(path: str | None) -> str:
    config = current_app.config
    return path or outbox.path_of(config["OUTBOUND"], config["INTERNAL_RELAY"],
                                  current_app.instance_path)


_PATH_OPTION = click.option("--path", help="Another maildir (default: CCM_OUTBOUND's, "
                                           "else instance/outbox).")


@outbox_group.command("list")
@_PATH_OPTION
def outbox_list(path: str | None) -> None:
    """List the outbox, oldest first: number, date (UTC), envelope recipient, subject."""
    try:
        entries = outbox.listing(_outbox_path(path))
    except outbox.NotFound as missing:
        raise click.ClickException(str(missing)) from None
    recipients = [terminal.printable(entry.recipient) for entry in entries]
    width = max(map(len, recipients), default=9)
    for entry, recipient in zip(entries, recipients, strict=True):
        _say(f"{entry.number:>4}  {entry.written_at:%Y-%m-%d %H:%M:%S}  "
             f"{recipient:<{width}}  {entry.subject}")
    click.echo(f"-- {len(entries)} message(s)")


@outbox_group.command("show")
@click.argument("message_id", metavar="ID")
@_PATH_OPTION
def outbox_show(message_id: str, path: str | None) -> None:
    """Print one message (its number in the list, or its file name): headers, then its
    text, decoded."""
    try:
        _say(outbox.show(_outbox_path(path), message_id), nl=False)
    except outbox.NotFound as missing:
        raise click.ClickException(str(missing)) from None
