"""Helpers for tests: forms with their CSRF token, the maildir outbox, the part-index check."""

from __future__ import annotations

import contextlib
import mailbox
import os
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from app.domain import reading
from app.mail import mime, parts

#: the password the user factory gives unless told otherwise
PASSWORD = "correct horse battery staple"

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                   r'name="csrf_token" value="([^"]+)"')


def csrf_token(client, path: str) -> str:
    """The CSRF token of the form on ``path``, as a browser would have it."""
    page = client.get(path, follow_redirects=True).get_data(as_text=True)
    match = _CSRF.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


_TOKEN = re.compile(r'(name="csrf_token" (?:type="hidden" )?value="|"X-CSRFToken": ")[^"]+"')


def without_csrf_tokens(page: str) -> str:
    """The page with its CSRF tokens blanked: they are signed with the time, so two
    answers a second apart differ there even when they are otherwise the same."""
    return _TOKEN.sub(r'\1TOKEN"', page)


def post_form(client, path: str, data: dict, *, form_path: str | None = None, **kwargs):
    """POST ``data`` to ``path`` with the CSRF token of the page at ``form_path``."""
    token = csrf_token(client, form_path or path)
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


def _delivery_order(key: str) -> tuple[int, ...]:
    """Maildir keys read "SECONDS.M<microseconds>P<pid>Q<counter>": compare them as numbers,
    since within one second "M99999" sorts after "M100000" as text."""
    return tuple(int(n) for n in re.findall(r"\d+", key)[:3])


def read_outbox(app) -> list[EmailMessage]:
    """Run the outbound queue as the worker would, then every message in the maildir outbox."""
    from app.delivery import runner

    while runner.run_due():
        pass
    path = app.config["OUTBOUND"].removeprefix("maildir:")
    if not os.path.isdir(path):
        return []
    box = mailbox.Maildir(path, factory=None, create=False)
    messages = []
    for key in sorted(box.keys(), key=_delivery_order):
        with box.get_file(key) as handle:
            messages.append(BytesParser(policy=policy.default).parse(handle))
    return messages


def mail(subject="Quarterly figures", body="Numbers attached.", to="pat@partner.test",
         sender="alice@acme.test", headers="") -> str:
    """A small plain-text message; ``headers`` are extra lines ending in a newline."""
    return (f"From: {sender}\nTo: {to}\nSubject: {subject}\n"
            f"Message-ID: <{abs(hash(subject + body))}@acme.test>\n{headers}\n{body}\n")


#: parts.scan itself: tests/conftest.py wraps the module's in a check
original_scan = parts.scan


def _payload(part):
    """The part's payload as text, or the error reading it raises: the email package
    decodes it by a declared charset, and one with a NUL in it raises ValueError."""
    try:
        return part.get_payload()
    except ValueError as error:
        return repr(error)


def assert_agrees(raw: bytes) -> None:
    """The part index of ``raw``, if it has one, gives what the full parse gives: the
    same tree, headers, payloads and sizes; and routing and the message page see the
    same whichever way they read it."""
    index = original_scan(raw)
    full = mime.parse_message(raw)
    heavy = mime.parse(raw, light=False)
    if index is None:
        assert mime.parse(raw) == heavy
        return
    whole = lambda ranges: [raw[a:b] for a, b in ranges]  # noqa: E731
    skeleton = index.skeleton(whole)
    assert [p.get_content_type() for p in skeleton.walk()] == \
        [p.get_content_type() for p in full.walk()]
    ours, theirs = parts.leaves(skeleton), parts.leaves(full)
    assert len(ours) == len(theirs) == len(index.leaves)
    for leaf, part, expected in zip(index.leaves, ours, theirs, strict=True):
        assert list(part.raw_items()) == list(expected.raw_items())
        parts.hydrate(part, raw[leaf.start:leaf.end])
        assert _payload(part) == _payload(expected)
        decoded = expected.get_payload(decode=True) or b""
        assert part.get_payload(decode=True) == decoded
        assert leaf.size == len(decoded)
        if leaf.base64:
            assert b"".join(parts.base64_chunks(iter([raw[leaf.start:leaf.end]]))) == decoded
    light = mime.parse(raw)
    assert light.index == index
    light.index = None
    assert light == heavy
    assert reading.read_indexed(index, whole) == reading.read(raw)


@contextlib.contextmanager
def statements():
    """Collect the SQL statements run inside the block (a list of strings)."""
    from sqlalchemy import event

    from app.extensions import db

    seen: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def in_app_context(app, function, *args) -> None:
    """Run ``function`` in an application context of its own, as another thread would."""
    from app.extensions import db

    with app.app_context():
        try:
            function(*args)
        finally:
            db.session.remove()


#: how long a child of in_child may take (a harmless template renders in milliseconds, a
#: request in a fraction of a second), and the memory it may take beyond what it was
#: forked with
CHILD_SECONDS = 5
CHILD_HEADROOM = 768 * 2**20


def in_child(function, *args, seconds: float = CHILD_SECONDS):
    """``function(*args)`` in a forked child with a time limit and a memory ceiling, so a
    hostile input that hangs or eats memory fails its test instead of the suite or the
    machine.

    Returns ("ok", value), ("raised", "Type: message") or ("timeout", None); skips the
    test where no memory ceiling can be set, rather than let a payload take the machine's.
    """
    import multiprocessing

    import pytest
    from flask import has_app_context

    from app.extensions import db

    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)

    def run():
        try:
            import resource

            with open("/proc/self/status") as status:
                size = next(int(line.split()[1]) * 1024 for line in status
                            if line.startswith("VmSize:"))
            resource.setrlimit(resource.RLIMIT_AS,
                               (size + CHILD_HEADROOM, resource.RLIM_INFINITY))
        except (ImportError, OSError, ValueError, StopIteration) as error:
            sending.send(("unsupported", f"no memory ceiling: {error}"))
            return
        if has_app_context():
            db.engine.dispose(close=False)  # the parent's connections stay the parent's
        try:
            outcome = ("ok", function(*args))
        except BaseException as error:  # MemoryError and RecursionError included
            outcome = ("raised", f"{type(error).__name__}: {error}"[:500])
        sending.send(outcome)

    child = context.Process(target=run, daemon=True)
    child.start()
    sending.close()
    try:
        if not receiving.poll(seconds):
            return ("timeout", None)
        outcome = receiving.recv()
        if outcome[0] == "unsupported":
            pytest.skip(outcome[1])
        return outcome
    except EOFError:
        return ("raised", f"the child died ({child.exitcode})")
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiving.close()


def post_in_child(browser, path: str, data: dict) -> tuple[int, str]:
    """POST ``data`` to ``path`` in a child (see in_child): the status and the page."""
    def post():
        response = browser.post(path, data=data)
        return response.status_code, response.get_data(as_text=True)

    outcome, value = in_child(post)
    assert outcome != "timeout", f"POST {path} did not answer in {CHILD_SECONDS}s"
    assert outcome == "ok", f"POST {path} failed (a 500 in production): {value}"
    return value


#: the Received: line the gateway puts on top of every message it takes (folded)
GATEWAY_TRACE = re.compile(rb"\AReceived: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")


def without_trace(raw: bytes) -> bytes:
    """``raw`` less the gateway's own Received: line on top, which it must have."""
    match = GATEWAY_TRACE.match(raw)
    assert match is not None and b"(CCM" in match.group(), raw[:300]
    return raw[match.end():]


def run_queue_in_workers(app, workers: int = 2, limit: int = 5) -> None:
    """Run the delivery queue dry in ``workers`` threads at once, each taking ``limit``
    items a run, as that many ``ccm worker`` processes would (PostgreSQL only)."""
    import threading

    from app.delivery import runner
    from app.extensions import db

    def work():
        with app.app_context():
            try:
                while runner.run_due(limit=limit):
                    pass
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
