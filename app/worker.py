"""The scheduler: runs background jobs, each in an application context of its own.

Started only by ``ccm worker`` and ``ccm serve``, never by web processes, so each job
runs once per worker and never once per web thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from . import outbound
from .extensions import db

log = logging.getLogger(__name__)


def jobs(app: Flask) -> dict[str, tuple[Callable[[], object], int]]:
    """Each job: what it runs, and every how many seconds."""
    return {"deliver": (outbound.run_due, app.config["WORKER_INTERVAL"])}


def scheduler(app: Flask, *, blocking: bool) -> BaseScheduler:
    result = BlockingScheduler() if blocking else BackgroundScheduler(daemon=True)
    for name, (function, seconds) in jobs(app).items():
        result.add_job(_in_context(app, name, function), "interval", seconds=seconds, id=name,
                       max_instances=1, coalesce=True, next_run_time=datetime.now())
    return result


def _in_context(app: Flask, name: str, function):
    def run():
        with app.app_context():
            try:
                function()
            except Exception:
                db.session.rollback()
                log.exception("job %s failed", name)
            finally:
                db.session.remove()

    run.__name__ = name
    return run
