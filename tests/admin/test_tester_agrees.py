"""The policy tester says what the gateway then does, recipient by recipient.

Each case sets up policies, asks the tester (through its form, sometimes with an .eml
upload), parses the per-recipient table out of the page, then gives the same message to
``ingest.receive`` and compares route, TLS and reason with the stored ``Recipient`` rows,
and both with the route the case expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from html.parser import HTMLParser
from io import BytesIO

import pytest
from sqlalchemy import select
from support import mail, post_form

from app.domain import ingest
from app.extensions import db
from app.models import DeliveryEvent, Domain, Message, Policy, Recipient

# --- policies, briefly -------------------------------------------------------------------


def route(name, to=None, sender=None, enabled=True):
    return {"name": name, "kind": "route", "to_pattern": to, "from_pattern": sender,
            "enabled": enabled}


def content(name, *phrases, where=("subject", "body"), to=None, sender=None, enabled=True):
    return {"name": name, "kind": "content", "phrases": list(phrases), "where": list(where),
            "to_pattern": to, "from_pattern": sender, "enabled": enabled}


def secure(name, to=None, tls="verify", fallback="ccm", sender=None, enabled=True):
    return {"name": name, "kind": "secure_delivery", "to_pattern": to, "from_pattern": sender,
            "tls": tls, "fallback": fallback, "enabled": enabled}


@dataclass(frozen=True)
class Case:
    policies: tuple = ()
    recipients: str = "pat@partner.test"
    #: the route the gateway must take for each recipient, in order (after de-duplication)
    expect: tuple = ("external",)
    sender: str = "alice@acme.test"
    subject: str = "Quarterly figures"
    body: str = "Numbers attached."
    #: the tester's "CCM mode asked for"; also the mode the portal passes to the gateway
    mode: str = "off"
    #: X-CCM-Mode in the message (a mail client's Send Secure): the gateway gets no mode
    header: str | None = None
    #: give the tester the message as an .eml file instead of subject and body
    eml: bool = False
    #: the .eml's body as HTML only
    html: bool = False
    #: text expected in the reason of the first recipient (which policy decided)
    reason: str = ""



CASES = [
    pytest.param(Case(), id="no-policy-external"),
    pytest.param(Case(recipients="pat@partner.test, bob@acme.test, dan@acme.example",
                      expect=("external", "internal", "internal")), id="no-policy-mixed"),
    pytest.param(Case(recipients="pat@partner.test, bob@acme.test", mode="external",
                      expect=("ccm", "internal"), reason="External Recipients Only"),
                 id="mode-external"),
    pytest.param(Case(recipients="pat@partner.test, bob@acme.test", mode="all",
                      expect=("ccm", "ccm"), reason="All Recipients"), id="mode-all"),
    pytest.param(Case(policies=(route("Partners", to="*@partner.test"),),
                      recipients="pat@partner.test, zed@other.test, bob@acme.test",
                      expect=("ccm", "external", "internal"), reason="Partners"),
                 id="route-by-domain"),
    pytest.param(Case(policies=(route("Partners", to="*@partner.test", enabled=False),),
                      expect=("external",), reason="MX resolution"), id="route-disabled"),
    pytest.param(Case(policies=(content("Keyword", "confidential", where=("subject",)),),
                      subject="CONFIDENTIAL figures", recipients="pat@partner.test bob@acme.test",
                      expect=("ccm", "internal"), reason="found 'confidential'"),
                 id="content-in-subject"),
    pytest.param(Case(policies=(content("Umlauts", "GESCHÄFTSGEHEIMNIS"),),
                      subject="Geschäftsgeheimnis Q3", recipients="pat@partner.test",
                      expect=("ccm",), reason="Umlauts"), id="content-non-ascii-subject"),
    pytest.param(Case(policies=(content("Body only", "confidential", where=("body",)),),
                      subject="Confidential", body="Nothing to see.", expect=("external",)),
                 id="content-body-only-misses-subject"),
    pytest.param(Case(policies=(content("Payments", "wire transfer"),), eml=True, html=True,
                      body="<p>Please confirm the <b>wire transfer</b> today.</p>",
                      expect=("ccm",), reason="Payments"), id="content-in-eml-html-body"),
    pytest.param(Case(policies=(content("A words", "figures"),
                                route("B partners", to="*@partner.test")),
                      expect=("ccm",), reason="Content policy 'A words'"),
                 id="order-content-first"),
    pytest.param(Case(policies=(route("B partners", to="*@partner.test"),
                                content("A words", "figures")),
                      expect=("ccm",), reason="Route policy 'B partners'"), id="order-route-first"),
    pytest.param(Case(policies=(route("Off", to="*@partner.test", enabled=False),
                                content("On", "figures")),
                      expect=("ccm",), reason="Content policy 'On'"), id="disabled-then-enabled"),
    pytest.param(Case(policies=(secure("Bank TLS", to="*@bank.test", fallback="bounce"),),
                      recipients="ops@bank.test, pat@partner.test",
                      expect=("external", "external"), reason="TLS verify, otherwise bounce"),
                 id="secure-delivery"),
    pytest.param(Case(policies=(secure("Bank TLS", to="*@bank.test"),
                                content("Keyword", "figures")),
                      recipients="ops@bank.test", expect=("ccm",), reason="Keyword"),
                 id="secure-then-content"),
    pytest.param(Case(policies=(secure("First TLS", to="external", tls="encrypt"),
                                secure("Second TLS", to="*@bank.test", tls="verify")),
                      recipients="ops@bank.test", expect=("external",), reason="First TLS"),
                 id="first-secure-wins"),
    pytest.param(Case(policies=(secure("Bank TLS", to="*@bank.test"),), mode="external",
                      recipients="ops@bank.test, bob@acme.test", expect=("ccm", "internal"),
                      reason="External Recipients Only"), id="mode-beats-secure"),
    pytest.param(Case(policies=(secure("Bank TLS", to="*@bank.test", enabled=False),),
                      recipients="ops@bank.test", expect=("external",), reason="MX"),
                 id="secure-disabled"),
    pytest.param(Case(policies=(route("From Alice", to="*", sender="alice@acme.test"),),
                      sender="BOB@acme.test", recipients="pat@partner.test, dan@acme.test",
                      expect=("external", "internal")), id="sender-pattern-misses"),
    pytest.param(Case(policies=(route("From Alice", to="*", sender="alice@acme.test"),),
                      sender="Alice@ACME.test", recipients="pat@partner.test, dan@acme.test",
                      expect=("ccm", "ccm"), reason="From Alice"), id="sender-pattern-matches"),
    pytest.param(Case(policies=(route("Colleagues", to="internal"),),
                      recipients="bob@acme.test, pat@partner.test", expect=("ccm", "external"),
                      reason="Colleagues"), id="to-internal"),
    pytest.param(Case(recipients="PAT@Partner.test; pat@partner.test <BOB@ACME.TEST>",
                      expect=("external", "internal")), id="duplicates-and-case"),
    pytest.param(Case(policies=(content("Keyword", "confidential"),), eml=True,
                      subject="Confidential figures", expect=("ccm",), reason="Keyword"),
                 id="eml-subject"),
    pytest.param(Case(eml=True, header="all", recipients="pat@partner.test, bob@acme.test",
                      expect=("external", "internal")), id="header-all-without-send-secure"),
    pytest.param(Case(eml=True, header="maximum", sender="bob@acme.test",
                      recipients="pat@partner.test, dan@acme.test",
                      expect=("external", "internal")), id="header-not-a-mode"),
    pytest.param(Case(eml=True, header="all", sender="bob@acme.test",
                      recipients="pat@partner.test, dan@acme.test", expect=("ccm", "ccm"),
                      reason="All Recipients"),
                 id="header-all-with-send-secure"),
    pytest.param(Case(eml=True, header="External", sender="bob@acme.test",
                      recipients="pat@partner.test, dan@acme.test", expect=("ccm", "internal"),
                      reason="External Recipients Only"),
                 id="header-external-with-send-secure"),
    pytest.param(Case(recipients="pat@partner.test, bob@acme.test", mode="all",
                      sender="alice@acme.test", expect=("ccm", "ccm")),
                 id="portal-mode-all-needs-no-send-secure"),
]


@pytest.fixture
def acme(acme, make_user):
    """tests/admin/conftest.py's, with a second domain, and two internal users."""
    acme.domains.append(Domain(name="acme.example"))
    db.session.commit()
    make_user(acme, "alice@acme.test", role="internal")  # the default profile: no Send Secure
    make_user(acme, "bob@acme.test", role="internal", send_secure_override=True)
    return acme


def give(tenant, policies) -> None:
    for position, values in enumerate(policies):
        db.session.add(Policy(tenant_id=tenant.id, position=position,
                              phrases=values.pop("phrases", []),
                              where=values.pop("where", ["subject", "body"]), **values))
    db.session.commit()


def eml_of(case: Case) -> bytes:
    headers = f"X-CCM-Mode: {case.header}\n" if case.header else ""
    if not case.html:
        text = mail(subject=case.subject, body=case.body, to=case.recipients,
                    sender=case.sender, headers=headers)
        return text.replace("\n", "\r\n").encode()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = (
        case.sender, case.recipients, case.subject)
    if case.header:
        message["X-CCM-Mode"] = case.header
    message.set_content(case.body, subtype="html")
    return message.as_bytes(policy=SMTP)


def form_message(case: Case) -> bytes:
    """The message the tester builds from its subject and body fields."""
    message = EmailMessage()
    message["From"] = case.sender
    message["Subject"] = case.subject
    message.set_content(case.body)
    return message.as_bytes(policy=SMTP)


class ResultTable(HTMLParser):
    """The tester's result: (address, route, TLS, reason) per row, and the notes above."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows, self.notes = [], []
        self._in_result = self._in_body = self._in_note = False
        self._row = self._cell = None
        self._route = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "section" and "tester-result" in classes:
            self._in_result = True
        elif self._in_result and tag == "p" and "notice" in classes:
            self._in_note, self._cell = True, []
        elif self._in_result and tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self._row, self._route = [], None
        elif self._row is not None and tag == "td":
            self._cell = []
        elif self._row is not None and tag == "span":
            self._route = next((c.removeprefix("badge-") for c in classes
                                if c.startswith("badge-") and c != "badge"), None)

    def handle_endtag(self, tag):
        if tag == "p" and self._in_note:
            self.notes.append("".join(self._cell).strip())
            self._in_note, self._cell = False, None
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            address, shown, reason = self._row
            tls = shown.partition(" TLS ")[2] or None
            self.rows.append((address, self._route, tls, reason))
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "section":
            self._in_result = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def ask_the_tester(browser, case: Case) -> ResultTable:
    # "" is the tester's "as a mail client asks": the header decides, as at the gateway
    data = {"sender": case.sender, "recipients": case.recipients,
            "mode": "" if case.header is not None else case.mode,
            "subject": "" if case.eml else case.subject, "body": "" if case.eml else case.body}
    if case.eml:
        data["eml"] = (BytesIO(eml_of(case)), "message.eml", "message/rfc822")
    response = post_form(browser, "/admin/policies/test", data)
    assert response.status_code == 200
    table = ResultTable()
    table.feed(response.get_data(as_text=True))
    assert table.rows, "the tester showed no result"
    return table


def send_through_the_gateway(case: Case) -> Message:
    raw = eml_of(case) if case.eml else form_message(case)
    recipients = [r.strip("<>") for r in
                  case.recipients.replace(";", " ").replace(",", " ").split()]
    # a mail client asks with the header and passes no mode; the portal passes its mode
    mode = None if case.header is not None else case.mode
    message = ingest.receive(raw, case.sender, recipients, mode=mode)
    db.session.commit()
    return message


@pytest.mark.parametrize("case", CASES)
def test_the_tester_agrees_with_the_gateway(app, acme, as_admin, case):
    give(acme, [dict(p) for p in case.policies])
    tester = ask_the_tester(as_admin, case)
    assert db.session.query(Message).count() == 0  # the tester sends nothing

    message = send_through_the_gateway(case)
    stored = db.session.scalars(select(Recipient).where(Recipient.message_id == message.id)
                                .order_by(Recipient.id)).all()
    # the gateway passes a local part on in the case it came in; the tester's form reads
    # addresses as the portal does, in lower case: the routes are the same
    gateway = [(r.address.lower(), r.route, r.tls, r.reason) for r in stored]

    assert [row[0] for row in tester.rows] == [row[0] for row in gateway]
    for said, done in zip(tester.rows, gateway, strict=True):
        assert said == done, f"tester {said} / gateway {done}"
    assert tuple(r.route for r in stored) == case.expect
    assert case.reason in stored[0].reason


def test_the_tester_shows_the_gateways_notes_about_x_ccm_mode(app, acme, as_admin):
    case = Case(eml=True, header="all", sender="alice@acme.test")
    tester = ask_the_tester(as_admin, case)
    message = send_through_the_gateway(case)
    notes = [e.text for e in db.session.scalars(select(DeliveryEvent).where(
        DeliveryEvent.recipient_id == message.recipients[0].id, DeliveryEvent.kind == "policy"))
        if e.text != message.recipients[0].reason]
    assert notes == ["X-CCM-Mode ignored: the sender may not Send Secure"]
    assert tester.notes == notes


def test_the_table_has_enough_cases():
    assert len(CASES) >= 15
    uploads = [c for c in CASES if c.values[0].eml]
    assert len(uploads) >= 4
