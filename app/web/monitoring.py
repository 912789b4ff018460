"""``/metrics`` for Prometheus, and the portal's own request timings.

``/metrics`` is answered in front of the portal (WSGI middleware, inside the proxy
handling so the client's address is the one app/web/proxies.py decided), before
sessions, CSRF and throttling: a scraper needs no cookie, gets none, and is never
counted against a client. Only clients in ``CCM_METRICS_NETWORKS`` get it; to anyone
else the path is what any unknown path is, the portal's own 404, so nothing says that
it exists.

The counts come from every CCM process (app/metrics.py); the queue's depth and the age
of its oldest item are read from the database at each scrape, with one query.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, g, request
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.exc import SQLAlchemyError

from app import clock, metrics
from app.domain import outbound_queue
from app.web import health, proxies

log = logging.getLogger(__name__)

PATH = "/metrics"


class MetricsEndpoint:
    """WSGI middleware answering ``/metrics`` to the allowed networks."""

    def __init__(self, app, portal: Flask, allowed: tuple[proxies.Network, ...]):
        self.app = app
        self.queue = QueueCollector(portal)
        self.allowed = allowed

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PATH \
                or not proxies.within(environ.get("REMOTE_ADDR"), self.allowed):
            return self.app(environ, start_response)
        if refused := health.not_get(environ, start_response):
            return refused
        body, content_type = metrics.exposition(self.queue)
        return health.answer(environ, start_response, "200 OK", body,
                             content_type=content_type)


class QueueCollector:
    """The outbound queue as it stands: items and the oldest item's age, by state."""

    def __init__(self, portal: Flask):
        self.portal = portal

    def collect(self):
        items = GaugeMetricFamily("ccm_queue_items", "Outbound items waiting, by state",
                                  labels=["state"])
        oldest = GaugeMetricFamily("ccm_queue_oldest_item_age_seconds",
                                   "Age of the oldest waiting outbound item, by state; "
                                   "0 when there is none", labels=["state"])
        with self.portal.app_context():  # its own session, removed when it ends
            try:
                depth = outbound_queue.depth()
            except SQLAlchemyError:
                log.warning("metrics: the outbound queue could not be read", exc_info=True)
                depth = None
        # A queue that cannot be read is said so, not shown as empty.
        yield GaugeMetricFamily("ccm_queue_read", "1 when the queue's metrics could be "
                                "read from the database at this scrape, else 0",
                                value=0 if depth is None else 1)
        if depth is None:
            return
        now = clock.utcnow()
        for state, (count, created) in depth.items():
            items.add_metric([str(state)], count)
            oldest.add_metric([str(state)],
                              (now - created).total_seconds() if created else 0.0)
        yield items
        yield oldest


def register(app: Flask) -> None:
    """Time every portal request, labelled by endpoint (a bounded set: the routes'
    names), not by URL; a request no route matched counts as ``other``. Registered
    before the other hooks, so their work is part of the time."""

    @app.before_request
    def start_timing() -> None:
        g.metrics_started = time.perf_counter()

    @app.teardown_request
    def observe_timing(_error=None) -> None:
        started = g.pop("metrics_started", None)
        if started is not None:
            metrics.request_served(request.endpoint or metrics.OTHER,
                                   time.perf_counter() - started)
