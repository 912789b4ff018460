"""Prometheus metrics: what the gateway counts, and the one place that counts it.

The rest of CCM calls the small functions below (``metrics.received(routes)``,
``metrics.sign_in_failed(...)``); none of it touches prometheus_client.

Several processes count at once (``ccm web``, several ``ccm smtp --share-port`` and
``ccm worker``, or ``ccm serve`` alone), so prometheus_client runs in its multi-process mode: each
process writes its counts to memory-mapped files of its own in one directory
(``CCM_METRICS_DIR``), and the portal's ``/metrics`` adds up the files of all of them.
prometheus_client chooses between in-memory and file-backed values when it is imported,
from ``PROMETHEUS_MULTIPROC_DIR``; :func:`configure` sets that variable and switches the
value class itself, and the metric objects are built only on first use, after it.

A process that ends leaves its files: its counts stay part of the totals, so a counter
never goes down. Each process, as it starts, folds the files of processes no longer
running into one archive file per kind, so the directory does not grow with restarts.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import glob
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from types import SimpleNamespace

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from app import database

#: label values a caller may give; anything else is counted as "other", so that no input
#: can make the number of series grow
ROUTES = ("ccm", "internal", "external")
KINDS = ("delivery", "notification", "dsn")
OUTCOMES = ("sent", "deferred", "bounced", "shunted")
FACTORS = ("password", "second_factor", "passkey")
OTHER = "other"

#: from a fraction of a second (a relay next door) to the five days of giving up
LATENCY_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 432000)
#: one SMTP transaction, MAIL FROM to the reply after DATA (CCM_SMTP_STORE_TIMEOUT: 30 s)
SMTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: a portal page
PORTAL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

#: seconds a live gauge's file counts after its process last wrote it
LIVE_GAUGE_FRESH = 10.0
_LOCK = ".lock"
_directory: str | None = None


def configure(directory: str) -> str:
    """Count into ``directory`` from now on; the first call in a process decides (each
    test builds applications of its own, the process keeps one directory). Returns the
    directory in use."""
    global _directory
    if _directory is not None:
        return _directory
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # where the value class writes
    if not getattr(values.ValueClass, "_ccm_identity", False):
        # also when prometheus_client found the variable set at its import (ccm smtp's
        # siblings inherit it): it then named files by the process id alone
        values.ValueClass = values.MultiProcessValue(process_identifier=_identity)
        values.ValueClass._ccm_identity = True
    with _locked(directory, fcntl.LOCK_EX):
        _fold_dead_processes(directory)
    _directory = directory
    _families()  # this process's series, at zero, in its own files
    # a process that ends takes its live gauges (ccm_smtp_processes) out of the sums
    atexit.register(multiprocess.mark_process_dead, _identity(), directory)
    closing = getattr(values, "close_all_multiprocess_files", None)  # 0.22 and later
    if closing is not None:
        atexit.register(closing)
    return directory


def directory() -> str | None:
    return _directory


@functools.cache
def _families() -> SimpleNamespace:
    """The metric objects, built on first use: after :func:`configure`, so that their
    values are the file-backed ones. ``registry=None``: the files are what is exported."""
    def counter(name, text, labels=()):
        return Counter(name, text, labels, registry=None)

    def histogram(name, text, labels, buckets):
        return Histogram(name, text, labels, buckets=buckets, registry=None)

    found = SimpleNamespace(
        messages=counter("ccm_messages_received", "Messages received and stored"),
        recipients=counter("ccm_recipients_received",
                           "Recipients of received messages, by the route chosen", ["route"]),
        held=counter("ccm_recipients_held",
                     "Recipients whose copy was kept in the isolation area"),
        outcomes=counter("ccm_delivery_outcomes",
                         "Outbound items' attempt outcomes", ["kind", "route", "outcome"]),
        latency=histogram("ccm_delivery_latency_seconds",
                          "From an outbound item's creation to its delivery",
                          ["kind", "route"], LATENCY_BUCKETS),
        smtp=histogram("ccm_smtp_transaction_seconds",
                       "SMTP transactions, MAIL FROM to the reply after DATA", (),
                       SMTP_BUCKETS),
        notifications=counter("ccm_notifications_sent",
                              "Generated mail delivered, by kind", ["kind"]),
        portal=histogram("ccm_portal_request_seconds", "Portal requests, by endpoint",
                         ["endpoint"], PORTAL_BUCKETS),
        sign_in_failures=counter("ccm_sign_in_failures",
                                 "Failed sign-in attempts (portal and SMTP AUTH)", ["factor"]),
        lockouts=counter("ccm_lockouts", "Accounts locked after too many failures"),
        # set by the first process of each ccm smtp command: the sum is the machine's
        smtp_processes=Gauge("ccm_smtp_processes",
                             "ccm smtp processes receiving, and how many were asked for",
                             ["state"], multiprocess_mode="livesum", registry=None),
    )
    # Every series of a closed set at zero from the start: a rate or an alert on one
    # works before its first event, and a missing series means a missing process.
    for route in ROUTES:
        found.recipients.labels(route)
        for kind in KINDS:
            found.latency.labels(kind, route)
            for outcome in OUTCOMES:
                found.outcomes.labels(kind, route, outcome)
    for kind in KINDS[1:]:
        found.notifications.labels(kind)
    for factor in FACTORS:
        found.sign_in_failures.labels(factor)
    found.portal.labels(OTHER)  # each endpoint appears at its first request
    return found


def _known(value: str | None, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


def received(routes: Iterable[str]) -> None:
    """One message stored, with one route per recipient: counted when its transaction
    commits."""
    routes = [_known(route, ROUTES) for route in routes]

    def count() -> None:
        found = _families()
        found.messages.inc()
        for route in routes:
            found.recipients.labels(route).inc()

    database.when_committed(count)


def held() -> None:
    """One recipient's copy kept in the isolation area, when the transaction commits."""
    database.when_committed(_families().held.inc)


def stored(seconds: float) -> None:
    """One SMTP transaction ended with the message stored (250)."""
    _families().smtp.observe(seconds)


def delivery_outcome(kind: str, route: str, outcome: str, seconds_since_created: float
                     ) -> None:
    """One attempt's outcome for an outbound item: sent, deferred, bounced or shunted.
    A sent item's age is its delivery latency; sent generated mail is a notification.
    Counted when the transaction recording it commits."""
    kind, route, outcome = _known(kind, KINDS), _known(route, ROUTES), \
        _known(outcome, OUTCOMES)

    def count() -> None:
        found = _families()
        found.outcomes.labels(kind, route, outcome).inc()
        if outcome == "sent":
            found.latency.labels(kind, route).observe(max(seconds_since_created, 0.0))
            if kind != "delivery":
                notification_sent(kind)

    database.when_committed(count)


def notification_sent(kind: str) -> None:
    _families().notifications.labels(_known(kind, KINDS)).inc()


def smtp_processes(running: int, wanted: int) -> None:
    """A ``ccm smtp`` command's processes: those running now, and those it should run
    (fewer running means one keeps failing, and is being started again). Said again at
    least every LIVE_GAUGE_FRESH seconds, or it no longer counts."""
    if _directory is None:
        return  # not configured: the families would be built with values kept nowhere
    found = _families().smtp_processes
    found.labels("running").set(running)
    found.labels("wanted").set(wanted)
    with contextlib.suppress(OSError):  # fresh: its process is alive, on any machine
        os.utime(os.path.join(_directory, f"gauge_livesum_{_identity()}.db"))


def request_served(endpoint: str, seconds: float) -> None:
    """One portal request; ``endpoint`` a Flask endpoint name, never a URL."""
    _families().portal.labels(endpoint).observe(seconds)


def sign_in_failed(factor: str = "password") -> None:
    _families().sign_in_failures.labels(_known(factor, FACTORS)).inc()


def locked_out() -> None:
    _families().lockouts.inc()


def exposition(*collectors) -> tuple[bytes, str]:
    """The text ``/metrics`` answers: every process's counts added up, and what
    ``collectors`` read now (the queue, from the database)."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    path = _directory
    if path is None:
        raise RuntimeError("metrics.configure() was not called: no directory to read")
    registry.register(_Files(path))
    with _locked(path, fcntl.LOCK_SH):  # never half-way through a fold
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _Files:
    """Every process's files added up, as prometheus_client's own collector does, less
    the live gauges of processes that have died without saying so (a ``ccm smtp``
    killed outright, or its container): what they said was true while they ran. A file
    is taken for a dead process's when one of this machine's has no process of its id,
    or when it has not been written for LIVE_GAUGE_FRESH seconds (another machine's,
    or a reused id's; the machines sharing the folder keep their clocks in step)."""

    def __init__(self, path: str):
        self.path = path

    def collect(self):
        files = [name for name in glob.glob(os.path.join(self.path, "*.db"))
                 if not (os.path.basename(name).startswith("gauge_live") and _dead(name))]
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)


def _dead(path: str) -> bool:
    pid = _pid(path)
    if pid is not None and not _running(pid):
        return True
    try:
        return time.time() - os.path.getmtime(path) > LIVE_GAUGE_FRESH
    except OSError:  # folded away meanwhile
        return True


@contextlib.contextmanager
def _locked(path: str, how: int) -> Iterator[None]:
    with open(os.path.join(path, _LOCK), "a") as handle:
        fcntl.flock(handle, how)
        yield


def _identity() -> str:
    """This process in its files' names: its id and its machine's name, as containers
    that share the folder each have process ids of their own (``ccm smtp``'s second
    process and another container's first could both be 7)."""
    return f"{os.getpid()}-{_host()}"


@functools.cache
def _host() -> str:
    """The machine's name as a file name may hold it (no ``_``, which ends the kind)."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "-"


def _pid(path: str) -> int | None:
    """The id of the process of this machine that wrote ``path``; None for an archive,
    or for a file of another machine (whose processes this one cannot see)."""
    tail = os.path.basename(path)[:-len(".db")].rpartition("_")[2]
    pid, _, host = tail.partition("-")
    if not pid.isdigit() or (host and host != _host()):
        return None
    return int(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _fold_dead_processes(path: str) -> None:
    """Add the counts of processes no longer running to ``<kind>_archive.db`` and remove
    their files. Gauges of dead processes mean nothing and are removed."""
    dead = [f for f in glob.glob(os.path.join(path, "*.db"))
            if (pid := _pid(f)) is not None and pid != os.getpid() and not _running(pid)]
    for kind in ("counter", "histogram", "summary"):
        files = [f for f in dead if os.path.basename(f).startswith(kind + "_")]
        if not files:
            continue
        archive = os.path.join(path, f"{kind}_archive.db")
        existing = [archive] if os.path.exists(archive) else []
        _write(multiprocess.MultiProcessCollector.merge(existing + files, accumulate=False),
               archive)
    for name in dead:
        os.remove(name)


def _write(families, archive: str) -> None:
    """Write merged families to a new file and put it in place at once."""
    folder, name = os.path.split(archive)
    fresh = os.path.join(folder, f".{name}.new")  # not *.db: no scrape reads it
    with contextlib.suppress(FileNotFoundError):
        os.remove(fresh)
    target = MmapedDict(fresh)
    try:
        for family in families:
            for sample in family.samples:
                key = mmap_key(family.name, sample.name, list(sample.labels),
                               list(sample.labels.values()), family.documentation)
                target.write_value(key, sample.value, 0.0)
    finally:
        target.close()
    os.replace(fresh, archive)
