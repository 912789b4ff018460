"""Counting for the SMTP AUTH throttle: in the shared rate-limit storage
(CCM_RATELIMIT_STORAGE), or in this process's memory while that storage cannot be reached.

The portal's sign-in throttle does the same through Flask-Limiter's in-memory fallback
(app/config.py); ``FallbackLimiter`` follows Flask-Limiter's rule, so a Redis outage
neither locks internal users out of the gateway nor lets guessing go unbounded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from flask import Flask
from limits import RateLimitItem
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import STRATEGIES, RateLimiter

log = logging.getLogger(__name__)

#: Flask-Limiter's back-off for asking a dead storage again: after 1, 2, 4 … 32 seconds,
#: then from 1 second again (flask_limiter.constants.MAX_BACKEND_CHECKS)
MAX_BACKEND_CHECKS = 5

T = TypeVar("T")


class FallbackLimiter:
    """A ``limits`` rate limiter on ``storage`` that counts in memory while it fails.

    The first failure switches to memory (logged once); while there, ``storage`` is asked
    again (``check()``) at most after 1, 2, 4 … 32 seconds, and counting goes back to it
    once it answers (logged once). The counts of either place are not carried over.

    ``processes``: how many ``ccm smtp`` processes count apart when they count in memory
    (``memory://``, or during an outage). Each then allows its share of a limit, so the
    processes together allow what one would: one a core must not mean a client gets as
    many more guesses (the kernel spreads its connections over all of them).
    """

    def __init__(self, storage: Storage, strategy: str = "fixed-window", processes: int = 1):
        self.storage = storage
        self.processes = processes
        in_memory = isinstance(storage, MemoryStorage)
        self.shared: RateLimiter = STRATEGIES[strategy](storage)
        self.memory: RateLimiter = STRATEGIES[strategy](
            storage if in_memory else MemoryStorage())
        self.storage_dead = False
        #: whether ``storage`` is this process's memory: then every count is a share
        self.in_memory = in_memory
        self._lock = threading.Lock()  # AUTH checks run in several threads at once
        self._checks = 0
        self._last_check = time.monotonic()

    def test(self, limit: RateLimitItem, *identifiers: str) -> bool:
        """Whether one more hit of ``limit`` would still be within it."""
        return self._counted(limit, lambda limiter, limit: limiter.test(limit, *identifiers))

    def hit(self, limit: RateLimitItem, *identifiers: str) -> bool:
        """Count one hit of ``limit``; whether it was within it."""
        return self._counted(limit, lambda limiter, limit: limiter.hit(limit, *identifiers))

    def _counted(self, limit: RateLimitItem,
                 call: Callable[[RateLimiter, RateLimitItem], T]) -> T:
        if self.in_memory:
            return call(self.memory, self.share(limit))
        if self.storage_dead and self._time_to_check() and self.storage.check():
            self._revived()
        if not self.storage_dead:
            try:
                return call(self.shared, limit)
            except Exception as error:  # whatever the storage's client raises
                self._died(error)
        return call(self.memory, self.share(limit))

    def share(self, limit: RateLimitItem) -> RateLimitItem:
        """This process's share of ``limit`` when each of ``processes`` counts alone: at
        least one, so a client is never refused its first try."""
        if self.processes == 1:
            return limit
        return type(limit)(max(1, limit.amount // self.processes), limit.multiples,
                           limit.namespace)

    def _died(self, error: Exception) -> None:
        with self._lock:
            if self.storage_dead:
                return
            self.storage_dead = True
        log.warning("rate-limit storage unreachable (%s): counting failed SMTP AUTH "
                    "in this process's memory until it answers", error)

    def _revived(self) -> None:
        with self._lock:
            if not self.storage_dead:
                return
            self.storage_dead, self._checks = False, 0
        log.info("rate-limit storage answers again: counting failed SMTP AUTH there")

    def _time_to_check(self) -> bool:
        """Flask-Limiter's rule: ask again once 2**n seconds have passed since the last
        try, n counting the tries (from 0 again after MAX_BACKEND_CHECKS); one thread
        asks, the others count in memory meanwhile."""
        with self._lock:
            if self._checks > MAX_BACKEND_CHECKS:
                self._checks = 0
            now = time.monotonic()
            if now - self._last_check <= 2 ** self._checks:
                return False
            self._last_check, self._checks = now, self._checks + 1
            return True


def auth_limiter(app: Flask) -> FallbackLimiter | None:
    """The SMTP AUTH throttle's counter for ``app``: on the storage and with the strategy
    the portal's Flask-Limiter uses (so both count in one place), shared out among
    SMTP_PROCESSES (``ccm smtp``'s processes) when counting in memory; None when rate
    limiting is off (CCM's tests)."""
    config = app.config
    if not config.get("RATELIMIT_ENABLED", True):
        return None
    storage = storage_from_string(config["RATELIMIT_STORAGE_URI"],
                                  **config.get("RATELIMIT_STORAGE_OPTIONS", {}))
    return FallbackLimiter(storage, config.get("RATELIMIT_STRATEGY", "fixed-window"),
                           processes=config.get("SMTP_PROCESSES", 1))
