"""Browser tests: the real application behind waitress, driven by Debian's Chromium.

Fixtures:

``live_server``
    the test ``app`` served by waitress on 127.0.0.1 and a free port; yields its base URL.
``browser``
    one headless Chromium for the whole session (skipped when Chromium is missing,
    except under ``CI``, where that is a failure).
``page``
    a fresh context and page per test. Console errors and uncaught page errors (a
    Content-Security-Policy violation is reported as a console error) fail the test
    at teardown, unless the test announced them with ``console_errors.allow(...)``.
``screenshot``
    ``screenshot(page, "label")`` saves ``tests/artifacts/<test name>-<label>.png``.
``outbox``
    ``outbox()`` lists the messages in the app's maildir outbox, oldest first.

Every test below this directory is marked ``browser``, so ``-m "not browser"`` skips them.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
import waitress
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from support import read_outbox
from waitress import wasyncore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parent / "artifacts"


def pytest_collection_modifyitems(items):
    """Mark every test collected from this directory (and below) as a browser test."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)


# --- the application, served ----------------------------------------------------------


@pytest.fixture
def live_server(app):
    """Serve ``app`` with waitress in a background thread; yields ``http://127.0.0.1:PORT``.

    Each request runs in one of waitress's worker threads with an application context
    of its own, so it has its own database session: objects the test holds go stale
    once the browser changed them (call ``db.session.expire_all()`` to re-read).
    """
    socket_map: dict = {}
    server = waitress.create_server(app, host="127.0.0.1", port=0, map=socket_map)
    base_url = f"http://127.0.0.1:{server.effective_port}"
    app.config["BASE_URL"] = base_url
    stopping = threading.Event()
    thread = threading.Thread(
        target=_serve, args=(socket_map, stopping), name="live-server", daemon=True
    )
    thread.start()
    try:
        yield base_url
    finally:
        server.task_dispatcher.shutdown()  # lets running requests finish
        stopping.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the live server did not stop"


def _serve(socket_map: dict, stopping: threading.Event) -> None:
    """Run waitress's loop until ``stopping`` is set, then close every socket it holds.

    Only this thread ever touches the socket map. Closing the sockets from the test's
    thread, or handing the closing over through waitress's trigger, raced with the
    loop (EBADF, now and then); and connections the browser kept alive would keep
    waitress's own ``run()`` going for ever.
    """
    try:
        while not stopping.is_set():
            wasyncore.loop(timeout=0.05, map=socket_map, count=1)
    finally:
        wasyncore.close_all(socket_map)


# --- the browser ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


class ConsoleErrors:
    """Console errors and page errors seen during one test, minus the expected ones."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.allowed: list[re.Pattern] = []

    def allow(self, pattern: str) -> None:
        """Expect errors matching the regular expression ``pattern`` (e.g. a 404 page)."""
        self.allowed.append(re.compile(pattern))

    def record(self, text: str) -> None:
        self.seen.append(text)

    def unexpected(self) -> list[str]:
        return [e for e in self.seen if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def page(browser, console_errors):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    tab = context.new_page()

    def on_console(message) -> None:
        if message.type == "error":
            where = (message.location or {}).get("url")
            console_errors.record(f"console: {message.text}" + (f" ({where})" if where else ""))

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: console_errors.record(f"page error: {error}"))
    try:
        yield tab
    finally:
        context.close()
    unexpected = console_errors.unexpected()
    if unexpected:
        pytest.fail("the browser reported errors:\n  " + "\n  ".join(unexpected), pytrace=False)


# --- helpers --------------------------------------------------------------------------


@pytest.fixture
def screenshot(request):
    """``screenshot(page, label)``: save a full-page PNG to look at; returns its path."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")

    def take(page, label: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}.png"
        # caret="initial": hiding the caret leaves style="" on every input, which htmx
        # copies onto a swapped-in form's fields, breaking the CSP (a console error).
        # a longer wait than actions get: a cold Chromium may take its time over fonts.
        # Chromium's capture waits for a painted frame, which a page caught between two
        # documents (a click's navigation under load) may never give: let the
        # navigation finish and try once more.
        for attempt in (1, 2):
            page.wait_for_load_state()
            try:
                page.screenshot(path=str(path), full_page=True, caret="initial",
                                timeout=30_000)
                return path
            except PlaywrightTimeoutError:
                if attempt == 2:
                    raise
        return path

    return take


@pytest.fixture
def outbox(app):
    """``outbox()``: run the outbound queue, then every message in the maildir outbox."""
    return lambda: read_outbox(app)
