"""The notification as a mail: who it is from, how it is signed, how its parts nest, what
its plain text says (issue 18: notifications that do not look like phishing)."""

from __future__ import annotations

import email
from email.policy import default

import dkim
import pytest

from app.delivery import dkim_signing, mail_templates, queue
from app.extensions import db
from app.models import NotificationTemplate

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def sample(kind: str) -> dict:
    return {name: mail_templates.SAMPLES[name] for name in mail_templates.KINDS[kind]
            if name not in mail_templates.EVERY_KIND_AT_SENDING}


def built(kind: str, tenant, to="pat@example.com"):
    """The notification as the recipient's server receives it: built, signed, parsed."""
    context = {**sample(kind), "tenant_name": tenant.display_name}  # as notices.py fills it
    raw = queue.signed(mail_templates.build(kind, to, tenant, **context), tenant)
    return raw, email.message_from_bytes(raw, policy=default)


def structure(message) -> list[str]:
    return [f"{'  ' * depth}{part.get_content_type()}" for part, depth in _walk(message, 0)]


def _walk(part, depth):
    yield part, depth
    if part.is_multipart():
        for child in part.iter_parts():
            yield from _walk(child, depth + 1)


# --- From ------------------------------------------------------------------------------


def test_from_is_the_portal_name_at_the_tenants_sender_address(app, make_tenant):
    tenant = make_tenant("acme", name="Acme Corp", portal_name="Acme Secure Mail",
                         mail_from="notifications@acme.test")
    _, message = built("secure_message", tenant)
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == (
        "Acme Secure Mail", "notifications@acme.test")


def test_without_a_sender_address_it_is_the_site_wide_one_then_postmaster(app, make_tenant):
    tenant = make_tenant("acme", name="Acme Corp")
    app.config["MAIL_FROM"] = "securemail@gateway.example"
    assert str(built("secure_message", tenant)[1]["From"]) == \
        "Acme Corp <securemail@gateway.example>"
    app.config["MAIL_FROM"] = ""
    assert str(built("secure_message", tenant)[1]["From"]) == "Acme Corp <postmaster@localhost>"


def test_a_portal_name_with_accents_and_commas_is_one_display_name(app, make_tenant):
    tenant = make_tenant("acme", name="Müller, Söhne & Co. — Rechtsanwälte",
                         mail_from="post@acme.test")
    raw, message = built("password_reset", tenant)
    assert raw.split(b"\r\n\r\n")[0].isascii()  # encoded words, not 8-bit headers
    (sender,) = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (
        "Müller, Söhne & Co. — Rechtsanwälte", "post@acme.test")


@pytest.mark.parametrize("stored", [
    "ü@acme.test", "x@evil.example@acme.test", '"x@evil.example"@acme.test', "x%y@acme.test",
    "a\x00b@acme.test", "a\u202eb@acme.test", "a\r\nBcc: x@evil.example", "a..b@acme.test",
    "notifications@globex.test", "notifications@mail.acme.test", "not an address", "@"])
def test_a_stored_sender_address_that_cannot_be_one_falls_back_to_the_sites(
        app, make_tenant, caplog, stored):
    """Saved before the settings page refused it (or written by hand): the tenant's every
    notification once failed in the worker (UnicodeEncodeError), or left with a malformed
    From. Now it goes from the site-wide address, and the log says why."""
    if "\x00" in stored and db.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL's text columns cannot hold a NUL, so none can be stored there")
    tenant = make_tenant("acme", name="Acme Corp")
    tenant.mail_from = stored
    app.config["MAIL_FROM"] = "securemail@gateway.example"
    _, message = built("secure_message", tenant)
    (sender,) = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Acme Corp", "securemail@gateway.example")
    assert not message["From"].defects
    assert "its notification sender address cannot be used" in caplog.text
    assert "tenant acme" in caplog.text


@pytest.mark.parametrize("stored", ["Bank <security@bank.example>", 'A "B" C', "Acme\x1b[2J",
                                    "Acme\u202eknaB", "Acme\r\nBcc: x@evil.example"])
def test_a_stored_portal_name_that_would_fake_the_sender_gives_way_to_the_sites(
        app, make_tenant, caplog, stored):
    tenant = make_tenant("acme", name="Acme Corp", mail_from="notifications@acme.test")
    tenant.portal_name = stored
    app.config["SITE_NAME"] = "Secure Mail"
    _, message = built("secure_message", tenant)
    (sender,) = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Secure Mail", "notifications@acme.test")
    assert "its portal name cannot be a sender's name" in caplog.text


# --- DKIM ------------------------------------------------------------------------------


@pytest.fixture
def keyed(make_tenant):
    """Acme with a DKIM key, its sender address at its own domain."""
    tenant = make_tenant("acme", name="Acme Corp", mail_from="notifications@acme.test")
    dkim_signing.generate(tenant)
    dkim_signing.activate(tenant, "acme.test")  # as if its record were published
    db.session.commit()
    return tenant


def verifies(raw: bytes, tenant, domain: str) -> bool:
    name, value = dkim_signing.dns_record(tenant, domain)
    records = {f"{name}.".encode(): value.encode()}
    return dkim.verify(raw, dnsfunc=lambda qname, timeout=5: records.get(qname))


def test_the_signature_is_for_the_from_domain_and_verifies(app, keyed):
    raw, message = built("secure_message", keyed)
    tags = dict(tag.strip().split("=", 1) for tag in
                str(message["DKIM-Signature"]).replace("\r\n", "").split(";") if "=" in tag)
    assert tags["d"] == "acme.test" and tags["s"] == keyed.dkim_selector
    assert verifies(raw, keyed, "acme.test")


@pytest.mark.parametrize("added", [
    b"Reply-To: attacker@evil.example", b"From: Security <security@acme.test>",
    b"Subject: Urgent: confirm your password", b"Cc: attacker@evil.example",
    b"To: someone@evil.example", b"Date: Mon, 1 Jan 2024 00:00:00 +0000",
    b"Message-ID: <replayed@evil.example>"])
def test_a_header_added_after_signing_breaks_the_signature(app, keyed, added):
    """A captured notification replayed with one more header (a Reply-To to the attacker, a
    second From or Subject shown instead of ours) no longer verifies."""
    raw, _ = built("secure_message", keyed)
    assert verifies(raw, keyed, "acme.test")
    head, _, body = raw.partition(b"\r\n\r\n")
    for tampered in (added + b"\r\n" + head, head + b"\r\n" + added):
        assert not verifies(tampered + b"\r\n\r\n" + body, keyed, "acme.test"), added


def test_a_long_folded_from_still_signs_for_its_own_domain(app, keyed):
    keyed.portal_name = "Acme Corporation Secure Message Portal for Clients and Partners " * 2
    raw, _ = built("secure_message", keyed)
    head = raw.split(b"\r\n\r\n")[0]
    assert b"From:" in head and b"\r\n " in head.split(b"From:")[1].split(b"\r\nTo:")[0]
    assert dkim_signing.from_domain(raw) == "acme.test"
    assert verifies(raw, keyed, "acme.test")


def test_a_sender_address_not_at_the_tenants_domains_goes_unsigned(app, keyed):
    """The site-wide address (the tenant has none of its own): the tenant's key has no
    record at that domain, so a signature could only fail; none is made."""
    keyed.mail_from = None
    app.config["MAIL_FROM"] = "securemail@gateway.example"
    raw, message = built("secure_message", keyed)
    assert message["DKIM-Signature"] is None
    assert dkim_signing.signing_domain(raw, keyed) is None


def test_a_subdomain_is_not_the_tenants_domain_for_signing(app, keyed):
    keyed.mail_from = "notifications@mail.acme.test"
    raw, _ = built("secure_message", keyed)
    assert dkim_signing.signing_domain(raw, keyed) is None


# --- the parts -------------------------------------------------------------------------


def test_the_logo_is_inline_in_a_related_part_and_never_an_attachment(app, make_tenant):
    tenant = make_tenant("acme", name="Acme Corp", logo=PNG, logo_type="image/png")
    _, message = built("secure_message", tenant)
    assert structure(message) == ["multipart/alternative", "  text/plain",
                                  "  multipart/related", "    text/html", "    image/png"]
    image = next(p for p in message.walk() if p.get_content_type() == "image/png")
    assert image.get_content() == PNG
    assert image.get_content_disposition() == "inline"
    cid = image["Content-ID"].strip("<>")
    html = message.get_body(("html",)).get_content()
    assert f'src="cid:{cid}"' in html and 'alt="Acme Corp"' in html
    assert "http://" not in html.split("<body", 1)[1].replace(
        mail_templates.SAMPLES["portal_url"], "")  # no remote image, no other link
    assert not any(p.get_content_disposition() == "attachment" for p in message.walk())


def test_without_a_logo_a_text_header_and_no_image(app, make_tenant):
    tenant = make_tenant("acme", name="Acme Corp", portal_name="Acme Secure")
    _, message = built("password", tenant)
    assert structure(message) == ["multipart/alternative", "  text/plain", "  text/html"]
    html = message.get_body(("html",)).get_content()
    assert "<img" not in html and ">Acme Secure</div>" in html


def test_a_tenants_template_that_shows_no_logo_carries_none(app, make_tenant):
    tenant = make_tenant("acme", logo=PNG, logo_type="image/png")
    db.session.add(NotificationTemplate(tenant=tenant, kind="secure_message",
                                        subject="For {{ recipient }}", text="{{ portal_url }}",
                                        html="<p>{{ portal_url }}</p>"))
    db.session.commit()
    _, message = built("secure_message", tenant)
    assert structure(message) == ["multipart/alternative", "  text/plain", "  text/html"]
    assert message["Subject"] == "For pat@example.com"


def test_the_html_holds_up_in_mail_clients(app, make_tenant):
    """Tables for layout, a colour scheme for dark mode, a hidden preheader."""
    tenant = make_tenant("acme")
    for kind in mail_templates.KINDS:
        html = built(kind, tenant)[1].get_body(("html",)).get_content()
        assert '<meta name="color-scheme" content="light dark">' in html
        assert "@media (prefers-color-scheme: dark)" in html
        assert 'role="presentation"' in html and "<div " in html
        preheader = html.split('<div style="display: none;', 1)[1].split("</div>")[0]
        assert len(preheader.split(">", 1)[1].split("&#8203;")[0].strip()) > 20, kind


# --- what it says ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(mail_templates.KINDS))
def test_the_plain_text_says_what_the_html_says(app, make_tenant, kind):
    _, message = built(kind, make_tenant("acme", name="Acme Corp"))
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    genuine = ["never carry", "attachments", "never ask for your password in an email",
               "The portal's address is"]
    for part in (" ".join(text.split()), " ".join(html.split())):  # wrapped as it fits
        assert all(words in part for words in genuine), kind
        assert "localhost" in part  # the portal's host, from CCM_BASE_URL
        assert mail_templates.SAMPLES["portal_url"] in part
        assert "Replies to this email are not read" in part


def test_the_password_notification_says_the_password_is_temporary(app, make_tenant):
    _, message = built("password", make_tenant("acme", name="Acme Corp"))
    for part in (message.get_body(("plain",)).get_content(),
                 message.get_body(("html",)).get_content()):
        assert "This password is temporary" in part
        assert "change it to one of your own the first time" in " ".join(part.split())
        assert mail_templates.SAMPLES["password"] in part


def test_subjects_are_plain_and_name_the_tenant(app, make_tenant):
    tenant = make_tenant("acme", name="Acme Corp")
    subjects = {kind: str(built(kind, tenant)[1]["Subject"]) for kind in mail_templates.KINDS}
    assert subjects["secure_message"] == "Secure message from Acme Corp: sign in to read it"
    for subject in subjects.values():
        assert "Acme Corp" in subject and subject.isascii() and "!" not in subject
        assert not any(word in subject.lower() for word in ("urgent", "verify", "action"))


def test_through_the_gateway_a_notification_carries_name_address_and_logo(app, gateway):
    """The whole way: a message held for CCM, its notifications queued, the worker sends
    them by CCM_OUTBOUND (a maildir here) with the tenant's sender and logo."""
    from pathlib import Path

    from support import mail, read_outbox

    app.config["OUTBOUND"] = f"maildir:{Path(app.instance_path) / 'outbox'}"
    gateway.tenant.portal_name = "Acme Secure"
    gateway.tenant.mail_from = "secure@acme.test"
    gateway.tenant.logo, gateway.tenant.logo_type = PNG, "image/png"
    db.session.commit()
    gateway.send(mail(to="pat@partner.test"), ["pat@partner.test"], mode="external")
    sent = read_outbox(app)
    assert sorted(str(m["Subject"]) for m in sent) == [
        "Secure message from Acme Secure: sign in to read it",
        "Your sign-in details for the Acme Secure secure message portal"]
    for message in sent:
        assert str(message["From"]) == "Acme Secure <secure@acme.test>"
        images = [p for p in message.walk() if p.get_content_maintype() == "image"]
        assert [p.get_content() for p in images] == [PNG]


def test_a_tenant_with_an_unusable_stored_sender_still_gets_its_notifications_out(app,
                                                                                 gateway):
    """The worker's whole way with ``ü@acme.test`` stored: before, every notification of
    the tenant failed (UnicodeEncodeError in build); now both go, from the site's address."""
    from pathlib import Path

    from support import mail, read_outbox

    app.config["OUTBOUND"] = f"maildir:{Path(app.instance_path) / 'outbox'}"
    app.config["MAIL_FROM"] = "securemail@gateway.example"
    gateway.tenant.portal_name = "Acme Secure"
    gateway.tenant.mail_from = "ü@acme.test"
    db.session.commit()
    gateway.send(mail(to="pat@partner.test"), ["pat@partner.test"], mode="external")
    sent = read_outbox(app)
    assert len(sent) == 2
    assert {str(m["From"]) for m in sent} == {"Acme Secure <securemail@gateway.example>"}
