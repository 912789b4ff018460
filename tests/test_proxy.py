"""The portal behind a real reverse proxy: Debian's nginx in front of ``ccm web``.

Clients connect from distinct loopback addresses (127.0.0.2, 127.0.0.3, ...); nginx
connects to the portal from 127.0.0.9 (``CCM_PROXY_NETWORKS``), so the portal can tell
it from a client that connects directly. What the portal takes for the client's address
is read where it matters: the access log and the sign-in throttle.
"""

from __future__ import annotations

import contextlib
import os

import pytest
from servers import NGINX, CcmWeb, Nginx, ThrowawayCA, Visitor
from sqlalchemy import select
from support import read_outbox

from app.extensions import db
from app.models import AccessEvent

PROXY = "127.0.0.9"
DIRECT = "127.0.0.4"
WRONG = {"email": "alice@acme.test", "password": "not the password at all"}
#: A POST the form refuses before any password is checked: the throttle counts it like
#: any other, without the cost of argon2 in a process the test cannot make cheaper.
EMPTY = {"email": "nobody@acme.test", "password": ""}

#: What a client may put in X-Forwarded-For itself (None: no header at all).
FORGED = [
    None,
    "203.0.113.9",
    "203.0.113.9, 198.51.100.7",
    "127.0.0.3",
    "::1",
    "unknown",
    "",
    ",,,",
    "203.0.113.9:443",
    "x" * 2000,
]


@pytest.fixture(autouse=True)
def nginx_present():
    if not NGINX.exists():
        message = f"{NGINX} is missing: apt-get install nginx-light"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def alice(make_tenant, make_user):
    return make_user(make_tenant(), "alice@acme.test")


@pytest.fixture
def portal(app, tmp_path):
    """``portal(hops=1, tls=None, base_url=...)``: ``ccm web`` on the test's database with
    nginx in front; returns both, whose ``port`` is where each listens."""
    with contextlib.ExitStack() as stack:
        def start(hops: int, *, tls=None, base_url: str = "http://portal.test"):
            web = stack.enter_context(CcmWeb(tmp_path, {
                "CCM_DATABASE_URL": app.config["DATABASE_URL"],
                "CCM_SECRET_KEY": "proxy-test-key",
                "CCM_BASE_URL": base_url,
                "CCM_PROXY_HOPS": str(hops),
                "CCM_PROXY_NETWORKS": f"{PROXY}/32",
            }))
            nginx = stack.enter_context(
                Nginx(tmp_path / f"nginx-{web.port}", web.port, source=PROXY, tls=tls))
            return web, nginx

        yield start


def recorded() -> list[str]:
    """The client addresses of the failed sign-ins in the access log, oldest first."""
    db.session.rollback()  # read what the portal process committed since
    return list(db.session.scalars(select(AccessEvent.client_address)
                                   .where(AccessEvent.kind == "sign_in_failed")
                                   .order_by(AccessEvent.id)))


def fail_sign_in(visitor: Visitor, forged: str | None) -> None:
    headers = {} if forged is None else {"X-Forwarded-For": forged}
    assert visitor.submit("/sign-in", WRONG, headers).status == 200


def test_behind_nginx_the_portal_sees_the_address_nginx_saw(portal, alice):
    _, nginx = portal(hops=1)
    for forged in FORGED:
        for source in ("127.0.0.2", "127.0.0.3"):
            fail_sign_in(Visitor(nginx.port, source), forged)
    assert recorded() == ["127.0.0.2", "127.0.0.3"] * len(FORGED)


def test_a_client_bypassing_nginx_cannot_forge_its_address(portal, alice):
    web, _ = portal(hops=1)
    for forged in FORGED:
        fail_sign_in(Visitor(web.port, DIRECT), forged)
    assert recorded() == [DIRECT] * len(FORGED)
    # Said once, to point an operator at CCM_PROXY_NETWORKS, not once per request.
    assert web.output().count("ignored: not in CCM_PROXY_NETWORKS") == 1


def test_with_no_hops_forwarded_headers_are_ignored(portal, alice):
    web, nginx = portal(hops=0)
    for forged in FORGED:
        fail_sign_in(Visitor(nginx.port, "127.0.0.2"), forged)
        fail_sign_in(Visitor(web.port, DIRECT), forged)
    assert recorded() == [PROXY, DIRECT] * len(FORGED)


#: Entries that are no address: with more hops than proxies, the one the client wrote.
NOT_ADDRESSES = ["unknown", "", ",,,", "203.0.113.9:443", "[::1]", "10.0.0.0/8", "0x7f.1",
                 "127.0.0.1 127.0.0.2", "<script>", "x" * 2000]


def test_more_hops_than_proxies_never_takes_a_non_address(portal, alice):
    # Two hops behind one proxy trusts the client's own last entry: a configuration
    # mistake, but what it lets through must still be an address, never any text.
    _, nginx = portal(hops=2)
    for forged in NOT_ADDRESSES:
        fail_sign_in(Visitor(nginx.port, "127.0.0.2"), forged)
    assert recorded() == [PROXY] * len(NOT_ADDRESSES)


def test_throttling_one_client_does_not_throttle_another(portal):
    web, nginx = portal(hops=1)
    # Neither a new X-Forwarded-For for each attempt, through nginx or around it, nor
    # anything else a client sends makes it someone else.
    for visitor in (Visitor(nginx.port, "127.0.0.2"), Visitor(web.port, DIRECT)):
        answers = [visitor.submit("/sign-in", EMPTY, {"X-Forwarded-For": f"198.51.100.{n}"})
                   .status for n in range(11)]
        assert answers == [200] * 10 + [429]
    assert Visitor(nginx.port, "127.0.0.3").submit("/sign-in", EMPTY).status == 200
    assert Visitor(nginx.port, "127.0.0.2").submit("/sign-in", EMPTY).status == 429


def test_behind_a_tls_proxy_the_scheme_and_host_are_the_proxys(portal, alice, tmp_path):
    ca = ThrowawayCA()
    certificate = ca.server_files("127.0.0.1", tmp_path)
    web, nginx = portal(hops=1, tls=certificate, base_url="https://127.0.0.1")
    browser = Visitor(nginx.port, "127.0.0.2", tls=ca.client_context())
    origin = f"https://127.0.0.1:{nginx.port}"
    # Over HTTPS Flask-WTF also wants the Referer from this very origin: it is checked
    # only because X-Forwarded-Proto said https, and passes only because nginx's
    # X-Forwarded-Host gave the public host rather than the portal's own port.
    assert browser.submit("/sign-in", WRONG, {"Referer": f"{origin}/sign-in"}).status == 200
    assert browser.submit("/sign-in", WRONG).status == 400
    # Straight to the portal, X-Forwarded-Proto is nobody's word: plain HTTP, as it is.
    forger = Visitor(web.port, DIRECT)
    assert forger.submit("/sign-in", WRONG, {"X-Forwarded-Proto": "https",
                                             "X-Forwarded-Host": f"127.0.0.1:{nginx.port}"}
                         ).status == 200
    assert recorded() == ["127.0.0.2", DIRECT]


def test_links_in_mail_come_from_the_base_url_whatever_the_host(portal, alice, app):
    _, nginx = portal(hops=1, base_url="https://mail.acme.test")
    visitor = Visitor(nginx.port, "127.0.0.2", host="evil.test")
    answer = visitor.submit("/password/forgot", {"email": "alice@acme.test"},
                            {"X-Forwarded-Host": "evil.test", "Forwarded": "host=evil.test"})
    assert answer.status == 200
    [mail] = read_outbox(app)
    body = mail.get_body(("plain",)).get_content()
    assert "https://mail.acme.test/password/reset/" in body
    assert "evil.test" not in mail.as_string()
