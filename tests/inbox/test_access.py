"""Only a message's own recipients see it, while it is visible; through every URL it has."""

import os
import re
from datetime import timedelta
from email import policy
from email.message import EmailMessage

import pytest
from sqlalchemy import event, select
from support import PASSWORD, csrf_token, mail, post_form, statements

from app.clock import utcnow
from app.domain import access_log, ingest, reading
from app.domain.passwords import hash_password
from app.extensions import db
from app.models import AccessEvent, Message, Recipient, Tenant, User

SECRET = "Merger terms Falcon"


def without_tags(html: str) -> str:
    """The text of some markup: a date is in a <time> element."""
    return re.sub(r"<[^>]+>", "", html)


def deliver(raw: str | bytes, rcpts, sender="alice@acme.test", mode="external") -> Message:
    if isinstance(raw, str):
        raw = raw.replace("\n", "\r\n").encode()
    message = ingest.receive(raw, sender, rcpts, mode=mode)
    db.session.commit()
    return message


def activate(tenant_slug: str, email: str) -> User:
    """Give an account created by CCM delivery a known password."""
    user = db.session.query(User).join(User.tenant).filter(
        User.email == email, Tenant.slug == tenant_slug).one()
    user.password_hash = hash_password(PASSWORD)
    user.must_change_password = False
    db.session.commit()
    return user


@pytest.fixture
def delivered(acme):
    """A message for pat and sam at partner.test; pat is signed in."""
    message = deliver(mail(subject=SECRET, to="pat@partner.test, sam@partner.test"),
                      ["pat@partner.test", "sam@partner.test"])
    activate("acme", "pat@partner.test")
    activate("acme", "sam@partner.test")
    return message


def urls(message: Message) -> list[str]:
    base = f"/inbox/{message.public_id}"
    return [base, f"{base}/body", f"{base}/parts/0", f"{base}/inline/0", f"{base}/reply"]


def test_the_recipient_reads_their_message(client, auth, delivered):
    auth.sign_in("pat@partner.test", slug="acme")
    page = client.get(f"/inbox/{delivered.public_id}")
    assert page.status_code == 200
    assert SECRET in page.get_data(as_text=True)


def test_the_first_opening_is_recorded_once_with_time_and_address(client, auth, delivered):
    auth.sign_in("pat@partner.test", slug="acme")
    client.get(f"/inbox/{delivered.public_id}", environ_base={"REMOTE_ADDR": "198.51.100.7"})
    client.get(f"/inbox/{delivered.public_id}", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    pat = next(r for r in delivered.recipients if r.address == "pat@partner.test")
    db.session.refresh(pat)
    assert pat.first_opened_at is not None
    assert pat.first_opened_from == "198.51.100.7"
    opened = [e.text for e in pat.events if e.kind == "opened"]
    assert opened == ["Opened by the recipient from 198.51.100.7"]
    sam = next(r for r in delivered.recipients if r.address == "sam@partner.test")
    assert sam.first_opened_at is None


def test_another_recipients_copy_is_not_found_at_any_of_its_urls(client, auth, acme,
                                                                 delivered):
    only_for_sam = deliver(mail(subject="For Sam alone", to="sam@partner.test"),
                           ["sam@partner.test"])
    auth.sign_in("pat@partner.test", slug="acme")
    for url in urls(only_for_sam):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "For Sam alone" not in response.get_data(as_text=True)


def test_another_tenants_message_is_not_found_even_for_the_same_address(
        client, auth, make_tenant, delivered):
    make_tenant("globex", domains=["globex.test"])
    at_globex = deliver(mail(subject="Globex only", to="pat@partner.test",
                             sender="gina@globex.test"),
                        ["pat@partner.test"], sender="gina@globex.test")
    activate("globex", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    for url in urls(at_globex):
        assert client.get(url).status_code == 404, url
    assert "Globex only" not in client.get("/inbox/").get_data(as_text=True)


def test_a_guessed_identifier_is_not_found(client, auth, delivered):
    auth.sign_in("pat@partner.test", slug="acme")
    for guess in ("1", str(delivered.id), delivered.public_id[:-1] + "x", "../etc/passwd"):
        assert client.get(f"/inbox/{guess}").status_code == 404


def test_identifiers_are_unguessable(delivered):
    assert len(delivered.public_id) >= 21  # 128 random bits, URL-safe
    assert not delivered.public_id.isdigit()


def test_the_sender_or_an_internal_colleague_cannot_read_it_as_a_recipient(
        client, auth, make_user, acme, delivered):
    make_user(acme, "alice@acme.test", role="internal")
    auth.sign_in("alice@acme.test", slug="acme")
    assert client.get(f"/inbox/{delivered.public_id}").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(client, delivered):
    for url in urls(delivered):
        assert client.get(url).status_code == 302


def test_an_expired_message_shows_that_it_expired_and_when_never_its_content(
        client, auth, delivered):
    pat = next(r for r in delivered.recipients if r.address == "pat@partner.test")
    pat.visible_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    auth.sign_in("pat@partner.test", slug="acme")
    page = client.get(f"/inbox/{delivered.public_id}")
    assert page.status_code == 410
    text = page.get_data(as_text=True)
    assert "This message has expired" in text
    ended = pat.visible_until
    assert f"Its time in the portal ended on {ended:%d %B %Y}." in without_tags(text)
    assert "Numbers attached." not in text and f"{delivered.public_id}/body" not in text
    for url in urls(delivered)[1:4]:
        assert client.get(url).status_code in (404, 410)
    assert client.get(f"/inbox/{delivered.public_id}/reply").status_code == 410


def test_a_message_just_inside_its_window_is_shown(client, auth, delivered):
    pat = next(r for r in delivered.recipients if r.address == "pat@partner.test")
    pat.visible_until = utcnow() + timedelta(seconds=30)
    db.session.commit()
    auth.sign_in("pat@partner.test", slug="acme")
    assert client.get(f"/inbox/{delivered.public_id}").status_code == 200


def test_reply_without_csrf_token_is_refused(client, auth, delivered):
    auth.sign_in("pat@partner.test", slug="acme")
    response = client.post(f"/inbox/{delivered.public_id}/reply",
                           data={"recipients": ["alice@acme.test"], "body": "hi"})
    assert response.status_code == 400
    assert db.session.query(Message).count() == 1


def test_a_reply_to_someone_not_on_the_message_is_refused_whatever_the_form_says(
        client, auth, delivered):
    auth.sign_in("pat@partner.test", slug="acme")
    path = f"/inbox/{delivered.public_id}/reply"
    response = post_form(client, path, {
        "recipients": ["alice@acme.test", "mallory@evil.test"], "body": "forged"})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "only go to the people on the message" in text
    assert "mallory@evil.test is not one of them" in text
    assert db.session.query(Message).count() == 1


def test_the_reply_form_offers_only_the_people_on_the_message(client, auth, delivered):
    auth.sign_in("pat@partner.test", slug="acme")
    reply = client.get(f"/inbox/{delivered.public_id}/reply").get_data(as_text=True)
    reply_all = client.get(f"/inbox/{delivered.public_id}/reply?all=1").get_data(as_text=True)
    assert re.search(r'<input checked [^>]*value="alice@acme.test"', reply)
    assert not re.search(r'<input checked [^>]*value="sam@partner.test"', reply)
    assert re.search(r'<input checked [^>]*value="sam@partner.test"', reply_all)
    assert 'value="pat@partner.test"' not in reply_all  # never to oneself
    assert 'value="sam@partner.test"' in reply_all
    assert "CCM mode" not in reply  # external recipients have no choice of mode


def test_attachments_download_as_files_with_a_safe_name(client, auth, acme):
    raw = (b"From: alice@acme.test\r\nTo: pat@partner.test\r\nSubject: files\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
           b"--b\r\nContent-Type: text/html\r\n"
           b"Content-Disposition: attachment; filename=\"../../evil<script>.html\"\r\n\r\n"
           b"<script>alert(1)</script>\r\n--b--\r\n")
    message = deliver(raw, ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    page = client.get(f"/inbox/{message.public_id}").get_data(as_text=True)
    assert "evil_script_.html" in page
    response = client.get(f"/inbox/{message.public_id}/parts/1")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "/" not in disposition and ".." not in disposition
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert client.get(f"/inbox/{message.public_id}/parts/99").status_code == 404


def test_a_large_attachment_is_streamed_whole_with_its_length(client, auth, acme,
                                                            monkeypatch):
    monkeypatch.setattr(reading, "CHUNK", 10_007)  # many slices, none a whole line
    content = os.urandom(150_000)
    mail_ = EmailMessage()
    mail_["From"], mail_["To"], mail_["Subject"] = "alice@acme.test", "pat@partner.test", "big"
    mail_.set_content("see attached")
    mail_.add_attachment(content, maintype="application", subtype="pdf", filename="big.pdf")
    message = deliver(mail_.as_bytes(policy=policy.SMTP), ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    response = client.get(f"/inbox/{message.public_id}/parts/1")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Length"] == "150000"
    assert response.headers["Content-Disposition"] == 'attachment; filename="big.pdf"'
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.get_data() == content


def test_inline_parts_are_served_only_when_they_are_images(client, auth, acme):
    raw = (b"From: alice@acme.test\r\nTo: pat@partner.test\r\nSubject: pic\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/html\r\n\r\n<img src=\"cid:a@x\"><img src=\"cid:s@x\">\r\n"
           b"--b\r\nContent-Type: image/png\r\nContent-ID: <a@x>\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
           b"--b\r\nContent-Type: image/svg+xml\r\nContent-ID: <s@x>\r\n\r\n"
           b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>\r\n--b--\r\n")
    message = deliver(raw, ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    png = client.get(f"/inbox/{message.public_id}/inline/1")
    assert (png.status_code, png.mimetype) == (200, "image/png")
    assert client.get(f"/inbox/{message.public_id}/inline/2").status_code == 404  # the SVG
    assert client.get(f"/inbox/{message.public_id}/inline/0").status_code == 404  # the HTML
    body = client.get(f"/inbox/{message.public_id}/body").get_data(as_text=True)
    assert f"/inbox/{message.public_id}/inline/1" in body


def test_a_content_id_cannot_point_the_reader_at_another_portal_page(client, auth, acme):
    other = deliver(mail(subject="Never opened"), ["pat@partner.test"])
    trap = f"../../{other.public_id}/parts/0"
    raw = (b"From: alice@acme.test\r\nTo: pat@partner.test\r\nSubject: trap\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/html\r\n\r\n<img src=\"cid:" + trap.encode() +
           b"\">\r\n--b\r\nContent-Type: image/png\r\nContent-ID: <" + trap.encode() +
           b">\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n")
    message = deliver(raw, ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    body = client.get(f"/inbox/{message.public_id}/body").get_data(as_text=True)
    assert f'src="/inbox/{message.public_id}/inline/1"' in body
    assert other.public_id not in body


@pytest.mark.parametrize("declared", [b"image/p\xffng", b"text/html\x00x", b"=?utf-8?q?a?="])
def test_an_attachment_of_an_odd_declared_type_downloads_as_bytes(client, auth, acme,
                                                                  declared):
    raw = (b"From: alice@acme.test\r\nTo: pat@partner.test\r\nSubject: odd\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
           b"--b\r\nContent-Type: " + declared + b"\r\n"
           b"Content-Disposition: attachment; filename=odd.bin\r\n\r\nBYTES\r\n--b--\r\n")
    message = deliver(raw, ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    response = client.get(f"/inbox/{message.public_id}/parts/1")
    assert response.status_code == 200
    assert response.mimetype in ("application/octet-stream", "text/plain")
    assert response.headers["Content-Type"].isascii()  # waitress answers 500 otherwise
    assert response.headers["Content-Type"].isprintable()
    assert response.get_data() == b"BYTES"


def test_plain_text_keeps_its_lines_and_links_and_escapes_markup(client, auth, acme):
    message = deliver(mail(body="Line one\nLine <b>two</b>\nhttps://example.com/x"),
                      ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    page = client.get(f"/inbox/{message.public_id}").get_data(as_text=True)
    assert "Line one\nLine &lt;b&gt;two&lt;/b&gt;" in page.replace("\r\n", "\n")
    assert ('<a href="https://example.com/x" target="_blank" rel="noopener noreferrer">'
            in page)


def test_a_body_too_large_to_format_is_shown_as_its_text(client, auth, acme, monkeypatch):
    from app.mail import sanitize

    monkeypatch.setattr(reading, "HTML_DISPLAY_LIMIT", 2000)
    monkeypatch.setattr(sanitize, "LINKIFY_LIMIT", 2000)
    rows = "".join(f"<tr><td>Row {n} https://example.com/{n}</td></tr>" for n in range(100))
    html = mail(subject="Big", body=f"<table>{rows}</table>",
                headers="MIME-Version: 1.0\nContent-Type: text/html\n")
    big_html = deliver(html, ["pat@partner.test"])
    big_text = deliver(mail(body="see https://example.com/long " + "x" * 3000),
                       ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    page = client.get(f"/inbox/{big_html.public_id}").get_data(as_text=True)
    assert "too large to show with its formatting" in page
    assert "Row 99" in page and "<iframe" not in page and "<td>" not in page
    body = client.get(f"/inbox/{big_html.public_id}/body").get_data(as_text=True)
    assert "Row" not in body  # nothing left for the sanitizer
    page = client.get(f"/inbox/{big_text.public_id}").get_data(as_text=True)
    assert "see https://example.com/long" in page and 'href="https://example.com/long' not in page


def test_inbox_search_and_paging(client, auth, acme):
    for n in range(23):
        deliver(mail(subject=f"Report {n:02d}", body=str(n)), ["pat@partner.test"])
    deliver(mail(subject="Holiday plans"), ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    first = client.get("/inbox/").get_data(as_text=True)
    assert "Holiday plans" in first and "Page 1" in first
    assert ">Older<" in first and ">Newer<" not in first
    assert first.index("Holiday plans") < first.index("Report 22")
    second = client.get("/inbox/?page=2").get_data(as_text=True)
    assert "Report 00" in second and "Holiday plans" not in second
    assert "Page 2" in second and ">Newer<" in second and ">Older<" not in second
    found = client.get("/inbox/?q=holiday").get_data(as_text=True)
    assert "Holiday plans" in found and "Report" not in found
    assert "Nothing found" in client.get("/inbox/?q=%25_").get_data(as_text=True)


def test_htmx_gets_just_the_list_or_just_the_message(client, auth, delivered):
    auth.sign_in("pat@partner.test", slug="acme")
    listing = client.get("/inbox/?q=merger", headers={"HX-Request": "true",
                                                      "HX-Target": "messages"})
    text = listing.get_data(as_text=True)
    assert text.lstrip().startswith('<section id="messages"') and "<html" not in text
    opened = client.get(f"/inbox/{delivered.public_id}",
                        headers={"HX-Request": "true", "HX-Target": "main"})
    assert "<html" not in opened.get_data(as_text=True)
    restore = client.get(f"/inbox/{delivered.public_id}",
                         headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)
    assert csrf_token(client, "/inbox/")


# --- the listing: one index walk, paged without counting -----------------------------


def reports(count: int, *, subject: str = "Report") -> None:
    for n in range(count):
        deliver(mail(subject=f"{subject} {n:02d}", body=str(n)), ["pat@partner.test"])
    activate("acme", "pat@partner.test")


def test_a_full_page_and_nothing_more_has_no_pager(client, auth, acme):
    reports(20)
    auth.sign_in("pat@partner.test", slug="acme")
    page = client.get("/inbox/").get_data(as_text=True)
    assert page.count('class="message-row') == 20
    assert 'aria-label="Pages"' not in page
    deliver(mail(subject="One more"), ["pat@partner.test"])
    page = client.get("/inbox/").get_data(as_text=True)
    assert page.count('class="message-row') == 20 and ">Older<" in page
    last = client.get("/inbox/?page=2").get_data(as_text=True)
    assert last.count('class="message-row') == 1 and "Report 00" in last


def test_a_page_past_the_end_shows_the_last_page(client, auth, acme):
    reports(23)
    auth.sign_in("pat@partner.test", slug="acme")
    for asked in ("3", "9", "99999999999999999999999"):
        page = client.get(f"/inbox/?page={asked}")
        text = page.get_data(as_text=True)
        assert page.status_code == 200, asked
        assert "Page 2" in text and "Report 00" in text and ">Older<" not in text, asked
    for odd in ("0", "-3", "x"):
        assert "Report 22" in client.get(f"/inbox/?page={odd}").get_data(as_text=True)


def test_an_empty_inbox_says_so_on_every_page(client, auth, acme, make_user):
    make_user(acme, "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    for path in ("/inbox/", "/inbox/?page=4"):
        assert "No messages yet" in client.get(path).get_data(as_text=True)


def test_search_says_how_many_it_found_without_counting_past_the_page(client, auth, acme):
    reports(25)
    deliver(mail(subject="Holiday plans"), ["pat@partner.test"])
    auth.sign_in("pat@partner.test", slug="acme")
    one = client.get("/inbox/?q=holiday").get_data(as_text=True)
    assert ">1 message found<" in one
    many = client.get("/inbox/?q=report").get_data(as_text=True)
    assert ">More than 20 messages found<" in many and "Holiday" not in many
    rest = client.get("/inbox/?q=report&page=2").get_data(as_text=True)
    assert ">25 messages found<" in rest and "Report 00" in rest


def test_revoked_and_expired_copies_stay_in_the_listing_and_the_search_greyed(
        client, auth, acme):
    reports(3, subject="Quarterly")
    copies = {r.message.subject: r for r in
              db.session.scalars(select(Recipient).where(Recipient.address == "pat@partner.test"))}
    copies["Quarterly 00"].state = "revoked"
    copies["Quarterly 00"].revoked_at = utcnow()
    copies["Quarterly 01"].visible_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    auth.sign_in("pat@partner.test", slug="acme")
    revoked, ended = copies["Quarterly 00"].revoked_at, copies["Quarterly 01"].visible_until
    for path in ("/inbox/", "/inbox/?q=quarterly"):
        text = client.get(path).get_data(as_text=True)
        rows = re.findall(r'<li class="message-row[^"]*">.*?</li>', text, re.S)
        assert len(rows) == 3, path
        gone = {re.search(r"Quarterly 0\d", row)[0]: row for row in rows if "message-gone" in row}
        assert set(gone) == {"Quarterly 00", "Quarterly 01"}, path
        assert f"Withdrawn by the sender on {revoked:%d %B %Y}" in without_tags(
            gone["Quarterly 00"])
        assert f"Expired on {ended:%d %B %Y}" in without_tags(gone["Quarterly 01"])
        assert "hx-get" not in gone["Quarterly 00"]  # its page answers 410: a full load


def test_a_copy_keeps_its_messages_arrival_time(acme):
    message = deliver(mail(), ["pat@partner.test", "sam@partner.test"])
    assert [r.received_at for r in message.recipients] == [message.received_at] * 2


def test_the_inbox_is_read_a_page_at_a_time_from_its_index(client, auth, acme):
    """No count over the whole inbox, and no sort of it: page 1 reads 21 index entries."""
    reports(3)
    auth.sign_in("pat@partner.test", slug="acme")
    client.get("/inbox/")
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert client.get("/inbox/").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert not [s for s, _ in captured if "count(" in s.lower()]
    listing = [(s, p) for s, p in captured if "FROM recipient" in s]
    assert len(listing) == 1
    if db.engine.dialect.name == "sqlite":
        statement, parameters = listing[0]
        with db.engine.connect() as connection:
            plan = " | ".join(row[-1] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters))
        assert "ix_recipient_inbox" in plan and "TEMP B-TREE" not in plan, plan


def test_search_takes_wildcards_and_the_escape_character_literally(client, auth, acme):
    for subject in ("50% off", "5000 units", "a/b testing", "ab testing", "under_score"):
        deliver(mail(subject=subject), ["pat@partner.test"])
    activate("acme", "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")

    def found(query: str) -> set[str]:
        page = client.get("/inbox/", query_string={"q": query}).get_data(as_text=True)
        return set(re.findall(r'class="row-subject" dir="auto">([^<]+)<', page))

    assert found("50%") == {"50% off"}
    assert found("a/b") == {"a/b testing"}
    assert found("r_s") == {"under_score"}
    assert found("a_b") == set() and found("0%") == {"50% off"}
    assert found("UNITS") == {"5000 units"}


def test_a_reload_is_not_logged_again_nor_written(client, auth, delivered):
    """The access log has one line per opening from a browser, not one per view: a
    reload within the window writes nothing at all."""
    auth.sign_in("pat@partner.test", slug="acme")
    url = f"/inbox/{delivered.public_id}"
    client.get(url, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    with statements() as seen:
        page = client.get(url, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert page.status_code == 200 and SECRET in page.get_data(as_text=True)
    assert not [s for s in seen if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]

    def openings() -> list[tuple[str, str]]:
        return [(e.client_address, e.browser) for e in db.session.scalars(
            select(AccessEvent).where(AccessEvent.kind == "opened").order_by(AccessEvent.id))]

    assert len(openings()) == 1
    client.get(url, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    client.get(url, environ_base={"REMOTE_ADDR": "203.0.113.9"},
               headers={"User-Agent": "Another browser"})
    assert [a for a, _ in openings()] == ["198.51.100.7", "203.0.113.9", "203.0.113.9"]
    for line in db.session.scalars(select(AccessEvent)):
        line.at -= access_log.REOPEN_WINDOW
    db.session.commit()
    client.get(url, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert len(openings()) == 4


def test_a_purged_copy_stays_listed_as_expired_on_the_day_its_window_ended(
        client, auth, delivered, frozen_clock):
    from app.domain import expiry

    pat = next(r for r in delivered.recipients if r.address == "pat@partner.test")
    ended = pat.visible_until
    frozen_clock.set(ended + timedelta(days=30))
    assert expiry.purge_expired() == 1
    auth.sign_in("pat@partner.test", slug="acme")
    listed = client.get("/inbox/").get_data(as_text=True)
    assert f"Expired on {ended:%d %B %Y}" in without_tags(listed) and "message-gone" in listed
    page = client.get(f"/inbox/{delivered.public_id}")
    assert page.status_code == 410
    assert f"Its time in the portal ended on {ended:%d %B %Y}." in without_tags(
        page.get_data(as_text=True))
