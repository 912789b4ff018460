"""Every answer carries strict security headers; pages have no inline script or style."""

import re

import pytest

PAGES = ["/sign-in", "/password/forgot", "/password/reset/nonsense", "/nowhere", "/inbox/"]


@pytest.mark.parametrize("path", PAGES)
def test_strict_headers_on_every_answer(client, path):
    headers = client.get(path).headers
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"


def test_static_files_are_cacheable_and_nosniff(client):
    response = client.get("/static/css/ccm.css")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" not in response.headers.get("Cache-Control", "")
    response.close()


@pytest.mark.parametrize("path", ["/sign-in", "/password/forgot"])
def test_no_inline_script_style_or_handlers(client, path):
    html = client.get(path).get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script>"
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert "hx-on" not in html


def test_csrf_token_travels_with_htmx_requests(client):
    html = client.get("/sign-in").get_data(as_text=True)
    assert re.search(r"<body hx-headers='\{\"X-CSRFToken\": \"[^\"]+\"\}'", html)


def test_session_cookie_is_httponly_and_lax(client):
    client.get("/sign-in")
    cookie = client.get_cookie("ccm_session")
    assert cookie.http_only
    assert cookie.same_site == "Lax"


@pytest.mark.parametrize("app", [{"BASE_URL": "https://mail.acme.test", "HTTPS": True,
                                  "SESSION_COOKIE_SECURE": True,
                                  "SESSION_COOKIE_NAME": "__Host-ccm_session"}],
                         indirect=True)
def test_over_https_cookies_are_secure_and_hsts_is_sent(client):
    response = client.get("/sign-in", base_url="https://mail.acme.test")
    assert "max-age=" in response.headers["Strict-Transport-Security"]
    cookie = client.get_cookie("__Host-ccm_session", domain="mail.acme.test")
    assert cookie.secure


def test_errors_show_no_traceback(app, client):
    @app.route("/boom")
    def boom():
        raise RuntimeError("secret internals")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/boom")
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text
    assert "Something went wrong" in text
