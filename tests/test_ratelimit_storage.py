"""Sign-in throttling counted in Redis, shared by processes, and what happens without it.

Two ``ccm web`` processes count in the real Redis on 127.0.0.1:6379, each through a relay
the test can cut to play an outage. Every test has a key prefix of its own, so parallel
runs do not count each other's attempts.
"""

from __future__ import annotations

import time

import pytest
from servers import CcmWeb, TcpRelay, Visitor

REDIS = ("127.0.0.1", 6379)
#: A POST the form refuses before any password is checked: the throttle counts it like
#: any other, without the cost of argon2 in a process the test cannot make cheaper.
EMPTY = {"email": "nobody@acme.test", "password": ""}
#: Only a bound on waiting for the portal to try Redis again (Flask-Limiter waits up to
#: 32 s between tries); the test asserts nothing about how soon that is.
GIVE_UP_SECONDS = 120


@pytest.fixture
def relay():
    with TcpRelay(REDIS) as relay:
        yield relay


@pytest.fixture
def portals(app, tmp_path, relay, redis_prefix):
    """Two ``ccm web`` processes on the test's database, counting in Redis via ``relay``."""
    settings = {
        "CCM_DATABASE_URL": app.config["DATABASE_URL"],
        "CCM_SECRET_KEY": "ratelimit-test-key",
        "CCM_RATELIMIT_STORAGE": f"redis://127.0.0.1:{relay.port}/0",
        "CCM_RATELIMIT_PREFIX": redis_prefix,
    }
    with CcmWeb(tmp_path, settings) as first, CcmWeb(tmp_path, settings) as second:
        yield first, second


def attempt(portal: CcmWeb, source: str) -> int:
    return Visitor(portal.port, source).submit("/sign-in", EMPTY).status


def counts(store, prefix: str, source: str) -> list[int]:
    """What Redis holds for ``source``'s sign-in attempts: one count per limit."""
    return sorted(int(store.get(key)) for key in store.scan_iter(f"{prefix}:*/{source}/*"))


def test_processes_share_their_counts_in_redis(portals, redis_store, redis_prefix):
    first, second = portals
    assert [attempt(portal, "127.0.0.2") for portal in (first, second) * 5] == [200] * 10
    assert counts(redis_store, redis_prefix, "127.0.0.2") == [10, 10]  # 10 a minute, 60 an hour
    assert attempt(first, "127.0.0.2") == 429
    assert attempt(second, "127.0.0.2") == 429
    assert attempt(second, "127.0.0.3") == 200


@pytest.mark.parametrize("outage", TcpRelay.OUTAGES)
def test_without_redis_each_process_throttles_alone_until_redis_returns(
        portals, relay, redis_store, redis_prefix, outage):
    first, second = portals
    for portal in portals:  # each now holds a connection to Redis, which the outage breaks
        assert attempt(portal, "127.0.0.5") == 200
    relay.cut(outage)

    # No 500 and no free guessing: each process counts in its own memory, so the same
    # client gets its ten attempts at each, and Redis never hears of them.
    for portal in portals:
        assert [attempt(portal, "127.0.0.2") for _ in range(11)] == [200] * 10 + [429]
        assert portal.output().count("falling back to in-memory storage") == 1
        assert "Traceback" not in portal.output()
    assert counts(redis_store, redis_prefix, "127.0.0.2") == []

    relay.restore()
    for portal, source in ((first, "127.0.0.3"), (second, "127.0.0.4")):
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while not counts(redis_store, redis_prefix, source) and time.monotonic() < deadline:
            assert attempt(portal, source) in (200, 429)
            time.sleep(0.5)
        assert counts(redis_store, redis_prefix, source), "the portal did not count in Redis again"

    # Counting is shared again.
    assert [attempt(portal, "127.0.0.6") for portal in portals * 5] == [200] * 10
    assert attempt(first, "127.0.0.6") == 429
    assert attempt(second, "127.0.0.6") == 429
    assert "Traceback" not in first.output() + second.output()
