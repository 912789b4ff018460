"""``ccm smtp`` as several processes on one port, one a core, as Postfix runs several smtpd.

Python runs one thread of a process at a time, so one process receives and stores with
one core however many the machine has. The process the operator (or systemd) starts is
the first: it binds the port, as a lone process would (a second ``ccm smtp`` finds it
taken), and starts the others, its siblings, with the same settings and its listening
socket, from which all of them accept, as Postfix's smtpd processes accept from the
socket their master bound (on SQLite they take turns to write,
``database.writers_take_turns``).

The first process keeps them running: a sibling that exits unasked is started again,
after a pause that grows while they keep failing early (as Postfix's master throttles a
service whose processes fail). Stopping the first stops them all, each gracefully within
CCM_SHUTDOWN_GRACE; a first process killed outright takes them with it (the kernel
sends each SIGTERM, ``follow_first``), so nothing is left listening on the port.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from app import metrics

log = logging.getLogger(__name__)

#: more processes than this buy nothing but memory (each keeps its own connections)
MOST = 8
#: a sibling that ran at least this long before it exited is started again at once
LIVED = 60.0
#: the longest pause before starting again one that keeps failing early
LONGEST_PAUSE = 60.0
#: seconds a sibling runs before the metrics count it as running
STEADY = 5.0
#: Linux's prctl option: the signal a process gets when the thread that started it ends
_PR_SET_PDEATHSIG = 1


def default_count() -> int:
    """One process a core this process may run on, and may use (a container's or a
    systemd unit's CPU quota, cgroup v2's cpu.max), at most MOST."""
    cores = len(os.sched_getaffinity(0))
    quota = _cpu_quota()
    if quota is not None:
        cores = min(cores, quota)
    return max(1, min(MOST, cores))


def _cpu_quota(path: str = "/sys/fs/cgroup/cpu.max") -> int | None:
    """Whole cores the cgroup may use (at least 1); None without a quota."""
    try:
        with open(path) as limits:
            quota, period = limits.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


@dataclass
class _Sibling:
    #: None when it could not be started
    popen: subprocess.Popen | None
    started: float
    #: seconds to wait before starting the next, when this one fails early
    pause: float = 1.0
    #: when the next may be started, once this one has exited unasked
    restart_at: float | None = None
    #: the next one's pause, once this one has ended
    next_pause: float = 1.0

    def ended(self, now: float) -> None:
        """Plan the next one, this one having ended at ``now``: after this one's pause
        and with twice it (up to LONGEST_PAUSE) when it failed early, at once and with
        1 s again when it had lived LIVED seconds."""
        early = now - self.started < LIVED
        self.restart_at = now + (self.pause if early else 0.0)
        self.next_pause = min(LONGEST_PAUSE, self.pause * 2) if early else 1.0


class Siblings:
    """The first process's siblings: started, kept running, stopped.

    Every method runs in the main thread, which starts them: a sibling's tie to the first
    process (``follow_first``) is to the thread that started it.
    """

    def __init__(self, count: int, listening: list[int] = (), *, first: bool = True):
        self.count = count
        #: the first process counts the command's processes in the metrics
        self.first = first
        #: the first's listening sockets (file descriptors), which each sibling accepts from
        self.listening = tuple(listening)
        self.running: list[_Sibling] = []

    def command(self) -> list[str]:
        # -P: not the working directory first on the import path (the instance folder,
        # which the service may write): the installed package, as the `ccm` script imports
        return [sys.executable, "-P", "-m", "app", "smtp", "--processes", str(self.count + 1),
                "--sibling-of", str(os.getpid()),
                *(f"--listening={descriptor}" for descriptor in self.listening)]

    def start(self) -> None:
        self.running = [self._start() for _ in range(self.count)]
        self._count_in_metrics()

    def _count_in_metrics(self) -> None:
        """Count the processes running (a sibling once it has run STEADY seconds: one
        that keeps failing soon after its start never shows as running) and wanted."""
        if self.first:
            now = time.monotonic()
            steady = sum(sibling.popen is not None and sibling.popen.poll() is None
                         and now - sibling.started >= STEADY for sibling in self.running)
            metrics.smtp_processes(running=1 + steady, wanted=1 + self.count)

    def _start(self, pause: float = 1.0) -> _Sibling:
        """A sibling started; one that could not be (no memory, the task limit) counts
        as one that failed at once, started again after its pause."""
        try:
            # this interpreter with CCM's own arguments, nothing from outside; its output
            # goes where the first's goes (the journal, a terminal)
            popen = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,  # noqa: S603
                                     pass_fds=self.listening)
        except OSError as error:
            log.error("could not start a ccm smtp process (%s): trying again in %.0f s",
                      error, pause)
            unstarted = _Sibling(None, time.monotonic(), pause)
            unstarted.ended(unstarted.started)
            return unstarted
        return _Sibling(popen, time.monotonic(), pause)

    def keep_up(self) -> None:
        """Start again each sibling that exited unasked, once its pause is over."""
        now = time.monotonic()
        for place, sibling in enumerate(self.running):
            if sibling.restart_at is None:
                status = sibling.popen.poll()
                if status is None:
                    continue
                sibling.ended(now)
                log.warning("ccm smtp process %s exited (status %s) after %.0f s: starting "
                            "another in %.0f s", sibling.popen.pid, status,
                            now - sibling.started, sibling.restart_at - now)
            if now >= sibling.restart_at:
                self.running[place] = self._start(sibling.next_pause)
        self._count_in_metrics()

    def stop(self) -> None:
        """Ask every sibling to stop (SIGTERM: each lets its DATA sessions finish)."""
        for sibling in self.running:
            if sibling.popen is not None and sibling.popen.poll() is None:
                sibling.popen.send_signal(signal.SIGTERM)

    def let_go(self, within: float = 2.0) -> None:
        """Wait, ``within`` seconds at most, until every sibling asked to stop has closed
        its copy of the listening sockets: the port refuses new connections only once no
        process holds them (the first closes its own after this)."""
        held = {f"socket:[{os.fstat(descriptor).st_ino}]" for descriptor in self.listening}
        deadline = time.monotonic() + within
        for sibling in self.running:
            while (sibling.popen is not None and sibling.popen.poll() is None
                   and _holds(sibling.popen.pid, held) and time.monotonic() < deadline):
                time.sleep(0.01)

    def wait(self, deadline: float) -> None:
        """Wait until ``deadline`` (``time.monotonic()``) for the siblings to end, then
        end those left (SIGKILL)."""
        for sibling in self.running:
            if sibling.popen is None:
                continue
            try:
                sibling.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                sibling.popen.kill()
                sibling.popen.wait()


def _holds(pid: int, sockets: set[str]) -> bool:
    """Whether process ``pid`` has one of ``sockets`` open (Linux's /proc; elsewhere, or
    when it cannot be read, it is taken not to)."""
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(f"/proc/{pid}/fd/{descriptor}") in sockets:
                return True
        except OSError:  # closed meanwhile
            continue
    return False


def follow_first(first: int) -> None:
    """In a sibling: be sent SIGTERM when the first process ends, however it ends; and
    stop now if it has already gone (between starting this one and this call)."""
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = getattr(libc, "prctl", None)
    if prctl is not None:  # Linux; elsewhere a sibling outlives a first process killed
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != first:
        os.kill(os.getpid(), signal.SIGTERM)
