"""Routing per recipient: policies, CCM modes and Send Secure, against real servers."""

import pytest
from support import mail

from app.models import DELIVERED_TO_CCM, DELIVERED_VIA_MX


def routes(message) -> dict[str, str]:
    return {r.address: r.route for r in message.recipients}


def events(recipient) -> list[str]:
    return [e.text for e in recipient.events]


def test_ordinary_external_mail_is_delivered_by_mx(gateway):
    sink = gateway.network.mx("partner.test")
    message = gateway.send(mail(), ["pat@partner.test"])
    assert routes(message) == {"pat@partner.test": "external"}
    gateway.run_queue()
    (delivery,) = sink.wait_for(1)
    assert delivery.rcpt_tos == ["pat@partner.test"]
    assert delivery.mail_from == "alice@acme.test"
    assert delivery.message["Subject"] == "Quarterly figures"
    recipient = message.recipients[0]
    assert recipient.state == "delivered"
    assert any(t.startswith(f"{DELIVERED_VIA_MX}: mx2.partner.test") for t in events(recipient))


def test_internal_recipients_go_to_the_internal_relay(gateway):
    message = gateway.send(mail(to="bob@acme.test"), ["bob@acme.test"])
    assert routes(message) == {"bob@acme.test": "internal"}
    gateway.run_queue()
    (delivery,) = gateway.relay.wait_for(1)
    assert delivery.rcpt_tos == ["bob@acme.test"]
    assert "Relayed to 127.0.0.1" in events(message.recipients[0])[-1]


def test_the_tenants_own_internal_relay_wins_over_the_default(gateway, relay):
    from servers import SmtpSink

    own = SmtpSink().start()
    try:
        # as the platform administrator sets it: a tenant administrator may not
        # (tests/gateway/test_relay_targets.py)
        gateway.tenant.internal_relay = f"smtp://127.0.0.1:{own.port}"
        gateway.tenant.internal_relay_trusted = True
        from app.extensions import db

        db.session.commit()
        gateway.send(mail(to="bob@acme.test"), ["bob@acme.test"])
        gateway.run_queue()
        assert len(own.wait_for(1)) == 1
        assert relay.messages == []
    finally:
        own.stop()


def test_route_policy_sends_matching_recipients_by_ccm(gateway):
    gateway.network.mx("partner.test")
    gateway.policy(name="Law firm", kind="route", from_pattern="*@acme.test",
                   to_pattern="*@lawfirm.test")
    message = gateway.send(mail(), ["counsel@lawfirm.test", "pat@partner.test"])
    assert routes(message) == {"counsel@lawfirm.test": "ccm", "pat@partner.test": "external"}
    ccm = message.recipients[0]
    assert ccm.policy.name == "Law firm"
    assert ccm.reason == "Route policy 'Law firm' matched"
    assert DELIVERED_TO_CCM in events(ccm)
    assert ccm.state == "held"


@pytest.mark.parametrize(
    ("subject", "body", "where", "ccm"),
    [
        ("[SECURE] figures", "plain", ["subject"], True),
        ("figures", "this is [Secure] content", ["subject"], False),
        ("figures", "this is [Secure] content", ["body"], True),
        ("figures", "nothing to see", ["subject", "body"], False),
    ],
)
def test_content_policy_looks_where_it_is_told(gateway, subject, body, where, ccm):
    gateway.network.mx("partner.test")
    gateway.policy(name="Keyword", kind="content", phrases=["[secure]"], where=where)
    message = gateway.send(mail(subject=subject, body=body), ["pat@partner.test"])
    assert routes(message)["pat@partner.test"] == ("ccm" if ccm else "external")


def test_content_policy_reads_the_text_of_html_parts(gateway):
    gateway.policy(name="Keyword", kind="content", phrases=["project falcon"], where=["body"])
    raw = (
        "From: alice@acme.test\nTo: pat@partner.test\nSubject: hi\nMIME-Version: 1.0\n"
        'Content-Type: text/html; charset="utf-8"\n\n'
        "<p>About <b>project FALCON</b>?</p><script>nothing here</script>\n"
    )
    message = gateway.send(raw, ["pat@partner.test"])
    assert routes(message) == {"pat@partner.test": "ccm"}


def test_content_policy_finds_phrases_in_any_charset(gateway):
    gateway.policy(name="Keyword", kind="content", phrases=["vertraulich"], where=["body"])
    raw = (b"From: alice@acme.test\r\nTo: pat@partner.test\r\nSubject: hi\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\nStreng VERTRAULICH, gr=FC=DFe\r\n")
    message = gateway.send(raw, ["pat@partner.test"])
    assert routes(message) == {"pat@partner.test": "ccm"}


def test_policies_apply_in_the_administrators_order(gateway):
    first = gateway.policy(name="First", kind="route", to_pattern="*@lawfirm.test")
    gateway.policy(name="Second", kind="content", phrases=["figures"])
    message = gateway.send(mail(), ["counsel@lawfirm.test"])
    assert message.recipients[0].policy.name == "First"
    first.position = 5
    from app.extensions import db

    db.session.commit()
    message = gateway.send(mail(), ["counsel@lawfirm.test"])
    assert message.recipients[0].policy.name == "Second"


def test_disabled_policies_do_nothing(gateway):
    gateway.network.mx("lawfirm.test")
    gateway.policy(name="Off", kind="route", to_pattern="*@lawfirm.test", enabled=False)
    message = gateway.send(mail(), ["counsel@lawfirm.test"])
    assert routes(message) == {"counsel@lawfirm.test": "external"}


def test_a_policy_without_to_leaves_internal_recipients_alone(gateway):
    gateway.network.mx("partner.test")
    gateway.policy(name="Everything", kind="content", phrases=["figures"])
    message = gateway.send(mail(), ["pat@partner.test", "bob@acme.test"])
    assert routes(message) == {"pat@partner.test": "ccm", "bob@acme.test": "internal"}


def test_a_policy_for_internal_recipients_applies_to_them(gateway):
    gateway.policy(name="Board", kind="route", to_pattern="internal")
    message = gateway.send(mail(), ["bob@acme.test"])
    assert routes(message) == {"bob@acme.test": "ccm"}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("off", {"pat@partner.test": "external", "bob@acme.test": "internal"}),
        ("external", {"pat@partner.test": "ccm", "bob@acme.test": "internal"}),
        ("all", {"pat@partner.test": "ccm", "bob@acme.test": "ccm"}),
    ],
)
def test_send_secure_header_selects_the_mode(gateway, mode, expected):
    gateway.network.mx("partner.test")
    message = gateway.send(mail(headers=f"X-CCM-Mode: {mode}\n"),
                           ["pat@partner.test", "bob@acme.test"])
    assert routes(message) == expected


def test_send_secure_is_ignored_without_permission(gateway):
    gateway.network.mx("partner.test")
    message = gateway.send(mail(sender="bob@acme.test", headers="X-CCM-Mode: all\n"),
                           ["pat@partner.test"], mail_from="bob@acme.test")
    recipient = message.recipients[0]
    assert recipient.route == "external"
    assert "X-CCM-Mode ignored: the sender may not Send Secure" in events(recipient)


def test_a_per_user_override_grants_send_secure(gateway):
    bob = gateway.account("bob@acme.test")
    bob.send_secure_override = True
    from app.extensions import db

    db.session.commit()
    message = gateway.send(mail(sender="bob@acme.test", headers="X-CCM-Mode: external\n"),
                           ["pat@partner.test"], mail_from="bob@acme.test")
    assert routes(message) == {"pat@partner.test": "ccm"}


def test_a_policy_selects_ccm_even_when_the_mode_is_off(gateway):
    gateway.policy(name="Keyword", kind="content", phrases=["figures"])
    message = gateway.send(mail(headers="X-CCM-Mode: off\n"), ["pat@partner.test"])
    assert routes(message) == {"pat@partner.test": "ccm"}
    message = gateway.send(mail(), ["pat@partner.test"], mode="off")
    assert routes(message) == {"pat@partner.test": "ccm"}


def test_the_x_ccm_mode_header_never_leaves_the_gateway(gateway):
    sink = gateway.network.mx("partner.test")
    gateway.send(mail(headers="X-CCM-Mode: off\nX-Other: kept\n"), ["pat@partner.test"])
    gateway.run_queue()
    (delivery,) = sink.wait_for(1)
    assert b"X-CCM-Mode" not in delivery.data and b"x-ccm-mode" not in delivery.data.lower()
    assert delivery.message["X-Other"] == "kept"


def test_the_x_ccm_mode_header_is_not_kept_for_ccm_either(gateway):
    message = gateway.send(mail(headers="X-CCM-Mode: external\n"), ["pat@partner.test"])
    assert b"x-ccm-mode" not in message.raw.lower()


def test_the_decision_and_its_policy_are_recorded_per_recipient(gateway):
    policy = gateway.policy(name="Law firm", kind="route", to_pattern="*@lawfirm.test")
    message = gateway.send(mail(), ["counsel@lawfirm.test", "pat@partner.test"])
    ccm, other = message.recipients
    assert (ccm.policy_id, ccm.kind) == (policy.id, "external")
    assert other.policy_id is None
    assert other.reason == "External recipient: MX resolution"
    assert events(ccm)[0].startswith("Received by SMTP from")
