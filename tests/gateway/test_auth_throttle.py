"""The SMTP AUTH throttle through a Redis outage: counted in memory, then in Redis again.

The real ingress counts failed AUTH in the real Redis on 127.0.0.1:6379 through a relay
the test cuts to play the outage; each test has a key prefix of its own.
"""

from __future__ import annotations

import logging
import smtplib
import subprocess
import time

import pytest
from servers import CCM, TcpRelay, ThrowawayCA, ccm_environment, free_port, wait_for_port
from support import PASSWORD

from app.config import REDIS_TIMEOUT_SECONDS

REDIS = ("127.0.0.1", 6379)
WRONG = "a guess at a password"
FELL_BACK = "counting failed SMTP AUTH in this process's memory"
CAME_BACK = "rate-limit storage answers again"
#: Only a bound on waiting for the ingress to try Redis again (at most 32 s between
#: tries, as Flask-Limiter); the test asserts nothing about how soon that is.
GIVE_UP_SECONDS = 120

pytestmark = pytest.mark.parametrize("app", [{"RATELIMIT_ENABLED": True}], indirect=True)


@pytest.fixture
def redis_relay(app, redis_prefix):
    """Redis through a relay the test can cut, as the ingress's rate-limit storage (the
    settings app/config.py makes of CCM_RATELIMIT_STORAGE=redis://…)."""
    with TcpRelay(REDIS) as relay:
        app.config.update(
            RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{relay.port}/0",
            RATELIMIT_STORAGE_OPTIONS={"key_prefix": redis_prefix,
                                       "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                                       "socket_timeout": REDIS_TIMEOUT_SECONDS})
        yield relay


def auth(client: smtplib.SMTP, password: str) -> int:
    """AUTH PLAIN: as alice with ``password``, or a guess at an account that does not
    exist (so alice is never locked out)."""
    login = "alice@acme.test" if password == PASSWORD else "nobody@acme.test"
    client.user, client.password = login, password
    try:
        return client.auth("PLAIN", client.auth_plain)[0]  # login() would try LOGIN too
    except smtplib.SMTPAuthenticationError as refused:
        return refused.smtp_code


def counts(store, prefix: str) -> list[int]:
    """What Redis holds for 127.0.0.1's failed AUTH: one count per limit."""
    return sorted(int(store.get(key))
                  for key in store.scan_iter(f"{prefix}:*/smtp-auth/127.0.0.1/*"))


def messages(caplog, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("outage", TcpRelay.OUTAGES)
def test_through_an_outage_users_sign_in_and_guessing_is_bounded_in_memory(
        gateway, tls_client, redis_relay, redis_store, redis_prefix, caplog, outage):
    caplog.set_level(logging.INFO, logger="app.smtp.throttle")
    client = tls_client()
    assert auth(client, WRONG) == 535
    assert counts(redis_store, redis_prefix) == [1, 1]  # 10 a minute, 60 an hour
    redis_relay.cut(outage)

    # No 454 for everyone: a user with the right password gets in...
    assert auth(tls_client(), PASSWORD) == 235
    # ...and guessing is throttled in this process's memory, which starts at nought.
    client = tls_client()
    assert [auth(client, WRONG) for _ in range(11)] == [535] * 10 + [454]
    assert auth(client, PASSWORD) == 454
    assert messages(caplog, FELL_BACK) == 1  # once, not at each AUTH
    assert messages(caplog, "password check failed") == 0
    redis_relay.restore()

    # Back in Redis, which knows of one failure only: 535 again, counted there.
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while counts(redis_store, redis_prefix) == [1, 1] and time.monotonic() < deadline:
        assert auth(client, WRONG) in (454, 535)
        time.sleep(0.5)
    assert counts(redis_store, redis_prefix) == [2, 2], "the ingress did not count in Redis again"
    assert messages(caplog, CAME_BACK) == 1
    assert auth(client, PASSWORD) == 235  # memory would still say 454


@pytest.mark.parametrize("outage", TcpRelay.OUTAGES)
def test_with_redis_down_from_the_start_the_throttle_counts_in_memory(
        gateway, tls_client, redis_relay, redis_store, redis_prefix, caplog, outage):
    redis_relay.cut(outage)
    assert auth(tls_client(), PASSWORD) == 235
    client = tls_client()
    assert [auth(client, WRONG) for _ in range(11)] == [535] * 10 + [454]
    assert messages(caplog, FELL_BACK) == 1
    assert auth(client, PASSWORD) == 454
    assert messages(caplog, "password check failed") == 0
    assert counts(redis_store, redis_prefix) == []


def test_ccm_smtp_started_without_redis_throttles_in_memory_then_in_redis(
        app, gateway, redis_relay, redis_store, redis_prefix, tmp_path):
    """``ccm smtp`` as an operator runs it, its storage set by CCM_RATELIMIT_STORAGE, in
    two processes: in memory each allows half the limit (app/smtp/processes.py)."""
    redis_relay.cut("refuse")
    ca, port, log = ThrowawayCA(), free_port(), tmp_path / "ccm-smtp.log"
    environment = ccm_environment(
        tmp_path, CCM_DATABASE_URL=app.config["DATABASE_URL"],
        CCM_SMTP_LISTEN=f"127.0.0.1:{port}", CCM_RELAY_NETWORKS="192.0.2.0/24",
        CCM_SMTP_TLS_CERT=str(ca.server_files("gateway.test", tmp_path)),
        CCM_RATELIMIT_STORAGE=f"redis://127.0.0.1:{redis_relay.port}/0",
        CCM_RATELIMIT_PREFIX=redis_prefix)
    context = ca.client_context()
    context.check_hostname = False  # smtplib names the host 127.0.0.1

    def connect() -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", port, timeout=10)
        client.starttls(context=context)
        client.ehlo()
        return client

    with log.open("wb") as output:
        process = subprocess.Popen([str(CCM), "smtp", "--processes", "2"], env=environment,
                                   stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, log)
        with connect() as client:
            assert auth(client, PASSWORD) == 235
        with connect() as client:  # one connection: one process, counting its half
            assert [auth(client, WRONG) for _ in range(6)] == [535] * 5 + [454]
        fell_back = [line.split()[2] for line in log.read_text().splitlines()
                     if FELL_BACK in line]  # the log line's third field is the process
        assert fell_back and len(fell_back) == len(set(fell_back))  # once a process
        assert counts(redis_store, redis_prefix) == []

        redis_relay.restore()
        deadline = time.monotonic() + GIVE_UP_SECONDS
        with connect() as client:
            while not counts(redis_store, redis_prefix) and time.monotonic() < deadline:
                assert auth(client, WRONG) in (454, 535)
                time.sleep(0.5)
        assert counts(redis_store, redis_prefix) == [1, 1], "ccm smtp did not count in Redis again"
        assert "Traceback" not in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)
