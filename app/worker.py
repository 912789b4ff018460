"""The scheduler: background jobs, each run by one process at a time, in its own context.

Started only by ``ccm worker`` and ``ccm serve``, never by web processes. Each run takes
the job's lease first (a conditional UPDATE, atomic on SQLite and PostgreSQL), so with
several workers a job runs once per interval, not once per worker; the outbound queue
is shared out item by item besides (app/delivery/runner.py).

Stopping (:func:`stop`, on SIGTERM): no job starts and no delivery thread takes another
item from then on; the runs in progress get the grace period (CCM_SHUTDOWN_GRACE) to
finish and record what they sent. Whatever this process still leases after it goes back
to the queue at once (``leases.hand_back``), rather than waiting out its 10-minute lease,
so a restart delays no mail by more than the grace period.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.events import EVENT_SCHEDULER_START
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.delivery import leases, runner
from app.domain import domain_proof, expiry
from app.extensions import db
from app.models import Job

log = logging.getLogger(__name__)

#: how many job runs this process has in progress; notified as each ends
_running = 0
_run_ended = threading.Condition()
#: set while this process runs the delivery job
_delivering = threading.Event()
#: when (time.monotonic()) this process's last delivery run failed as a whole
_delivery_failed_at: float | None = None


@dataclass(frozen=True)
class Schedule:
    run: Callable[[], object]
    seconds: int
    #: how long a run may hold the job before another process may take it over
    lease: timedelta
    description: str


def jobs(app: Flask) -> dict[str, Schedule]:
    return {
        # Items carry their own leases (SKIP LOCKED): a job-wide lease would only let a
        # killed worker hold up its restarted successor until that lease ran out.
        "deliver": Schedule(runner.run_due, app.config["WORKER_INTERVAL"], None,
                            "send what is due in the outbound queue"),
        "expire": Schedule(expiry.purge_expired, 300, timedelta(hours=2),
                           "purge the content of messages past their visibility window"),
        "warn": Schedule(expiry.warn_unopened, 3600, timedelta(hours=1),
                         "warn recipients of unopened messages about to expire"),
        "prove": Schedule(lambda: domain_proof.check_pending(app.config["DNS_SERVERS"]),
                          int(domain_proof.AUTO_CHECK_EVERY.total_seconds()),
                          timedelta(minutes=30),
                          "look in DNS for the proof of domains added this week"),
        "clean": Schedule(expiry.clean_up, 86400, timedelta(hours=1),
                          "delete used reset links, ended sessions, old queue items"),
    }


def run_job(app: Flask, name: str) -> str | None:
    """Run job ``name`` now, if no other process is running it; its result, or None."""
    schedule = jobs(app)[name]
    if not _take_lease(name, schedule.lease):
        return None
    started = time.monotonic()
    try:
        result, ok = repr(schedule.run()), True
    except Exception as error:
        db.session.rollback()
        log.exception("job %s failed", name)
        if name == "deliver":
            global _delivery_failed_at
            _delivery_failed_at = time.monotonic()
        result, ok = f"failed: {type(error).__name__}: {error}", False
    job = db.session.get(Job, name)
    job.last_finished_at = clock.utcnow()
    job.last_duration_ms = int((time.monotonic() - started) * 1000)
    job.last_result, job.last_ok, job.lease_until = result[:2000], ok, None
    db.session.commit()
    return result


def _take_lease(name: str, lease: timedelta | None) -> bool:
    now = clock.utcnow()
    if db.session.get(Job, name) is None:
        db.session.add(Job(name=name))
        try:
            db.session.commit()
        except IntegrityError:  # another process created it first: fine
            db.session.rollback()
    if lease is None:
        db.session.execute(update(Job).where(Job.name == name).values(last_started_at=now))
        db.session.commit()
        return True
    taken = db.session.execute(
        update(Job).where(Job.name == name,
                          or_(Job.lease_until.is_(None), Job.lease_until < now))
        .values(lease_until=now + lease, last_started_at=now))
    db.session.commit()
    return taken.rowcount == 1


#: seconds between two looks for mail that fell due while no delivery run is under way
LOOK_FOR_DUE = 0.25


def scheduler(app: Flask, *, blocking: bool) -> BaseScheduler:
    result = BlockingScheduler() if blocking else BackgroundScheduler(daemon=True)
    for name, schedule in jobs(app).items():
        result.add_job(_in_context(app, name), "interval", seconds=schedule.seconds, id=name,
                       max_instances=1, coalesce=True, next_run_time=datetime.now())
    result.add_listener(lambda _: threading.Thread(
        target=_start_delivery_when_due, args=(app, result), daemon=True,
        name="ccm-look-for-due").start(), EVENT_SCHEDULER_START)
    return result


def _start_delivery_when_due(app: Flask, running: BaseScheduler) -> None:
    """Start the delivery run at once when mail is due and none is under way, instead of
    at its next interval (CCM_WORKER_INTERVAL, 5 s): mail that ``ccm smtp`` received
    leaves within a fraction of a second, as Postfix's queue manager is told of new mail
    at once (a run under way takes what falls due meanwhile itself). A thread of its own,
    not a job: a look held up by a stalled database must not have the scheduler warn of
    skipped runs four times a second. It ends when the scheduler stops."""
    while not runner.stopping.is_set():
        time.sleep(LOOK_FOR_DUE)
        if not running.running:
            return
        failed = _delivery_failed_at
        if _delivering.is_set() or (failed is not None and time.monotonic() - failed
                                    < app.config["WORKER_INTERVAL"]):
            continue  # a run that failed is tried again at its interval, not 4 times a second
        with app.app_context():
            try:
                # any destination: nothing is busy (one row of the due index)
                due = leases.due_elsewhere(())
            except Exception:  # the database out: the interval's run will say so
                log.debug("could not look for due mail", exc_info=True)
                continue
            finally:
                db.session.remove()
        if due and not _delivering.is_set():
            with contextlib.suppress(JobLookupError):  # the scheduler stopping meanwhile
                running.modify_job("deliver", next_run_time=datetime.now())


def stop(app: Flask, running: BaseScheduler, grace: float) -> bool:
    """Stop ``running``: start no job, let the runs in progress finish within ``grace``
    seconds, then hand back the deliveries still leased; whether every run ended.

    When one has not (a delivery to a slow server, a long clean-up), its thread is left
    running: the caller ends the process without waiting for it, and it records nothing
    more of what it handed back.
    """
    deadline = time.monotonic() + grace
    runner.stopping.set()
    running.shutdown(wait=False)  # no new runs; those in progress go on in their threads
    with _run_ended:
        ended = _run_ended.wait_for(lambda: _running == 0,
                                    max(0.0, deadline - time.monotonic()))
    with app.app_context():
        try:
            leases.hand_back()
        finally:
            db.session.remove()
    if not ended:
        log.warning("stopping: %d job run(s) did not end within %s s", _running, grace)
    return ended


def _in_context(app: Flask, name: str):
    def run():
        global _running
        with _run_ended:
            _running += 1
        if name == "deliver":
            _delivering.set()
        try:
            with app.app_context():
                try:
                    run_job(app, name)
                finally:
                    db.session.remove()
        finally:
            if name == "deliver":
                _delivering.clear()
            with _run_ended:
                _running -= 1
                _run_ended.notify_all()

    run.__name__ = name
    return run
