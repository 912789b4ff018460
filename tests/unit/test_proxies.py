"""Whose X-Forwarded-* headers the portal believes, for peers nginx cannot play here."""

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from app.config import networks
from app.web import proxies


@Request.application
def echo(request: Request) -> Response:
    forwarded = request.headers.get("X-Forwarded-For", "-")
    return Response(f"{request.remote_addr} {request.scheme} {forwarded}")


@pytest.mark.parametrize(("peer", "seen"), [
    ("10.0.0.5", "203.0.113.9 https"),
    ("::ffff:10.0.0.5", "203.0.113.9 https"),  # an IPv4 peer on a dual-stack listener
    ("10.0.0.6", "10.0.0.6 http -"),
    ("::1", "::1 http -"),
    ("localhost", "localhost http -"),  # not an address at all (a Unix socket, say)
    ("", " http -"),
])
def test_only_the_proxy_networks_are_believed(peer, seen):
    client = Client(proxies.TrustedProxies(echo, 1, networks(" 10.0.0.5 , ")))
    answer = client.get("/", environ_base={"REMOTE_ADDR": peer}, headers={
        "X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Forwarded-Proto": "https"})
    assert answer.get_data(as_text=True).startswith(seen)


def test_no_hops_believes_no_one():
    client = Client(proxies.TrustedProxies(echo, 0, networks("0.0.0.0/0,::/0")))
    answer = client.get("/", environ_base={"REMOTE_ADDR": "10.0.0.5"},
                        headers={"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=1.2.3.4"})
    assert answer.get_data(as_text=True) == "10.0.0.5 http -"
