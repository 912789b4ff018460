"""End to end: the header the mail client buttons set, through the real SMTP ingress.

The header lines are not written here: the buttons' own scripts
(app/mail_clients/*/send_secure.js) make them, run by Node against fakes as in tests/js/
(Outlook's compose item is tests/js/fake_office.js; Thunderbird's customHeaders), starting
from a message that already had another choice. Each message then goes to the gateway
over SMTP: by CCM for a sender allowed to Send Secure, as usual for one who is not, and
the header never reaches a recipient.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support import mail

from app.extensions import db
from app.models import Message

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "app" / "mail_clients"

#: each script, each choice, from a message whose button said "all" before
SCRIPT = """
const outlook = require(process.argv[1]);
const thunderbird = require(process.argv[2]);
const {fakeItem} = require(process.argv[3]);
(async () => {
  const found = {outlook: {}, thunderbird: {}};
  for (const mode of ["all", "external", "off"]) {
    const item = fakeItem({headers: {"X-CCM-Mode": "all"}});
    await new Promise((resolve) => outlook.choose(item, mode, resolve));
    found.outlook[mode] = Object.entries(item.headers);
    let headers = [{name: "X-CCM-Mode", value: "all"}];
    const messenger = {
      compose: {
        async getComposeDetails() { return {customHeaders: headers}; },
        async setComposeDetails(tabId, details) { headers = details.customHeaders; },
      },
      composeAction: {async setBadgeText() {}, async setTitle() {}},
      i18n: {getMessage(key) { return key; }},
    };
    await thunderbird.choose(messenger, 1, mode);
    found.thunderbird[mode] = headers.map((h) => [h.name, h.value]);
  }
  console.log(JSON.stringify(found));
})();
"""


@pytest.fixture(scope="module")
def headers_set() -> dict[str, dict[str, list[list[str]]]]:
    """What each button leaves on the message for each choice: client → mode → headers."""
    from test_mail_clients import node

    result = subprocess.run(
        [node(), "-e", SCRIPT, str(SOURCES / "outlook" / "send_secure.js"),
         str(SOURCES / "thunderbird" / "send_secure.js"),
         str(ROOT / "tests" / "js" / "fake_office.js")],
        capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def test_the_buttons_set_exactly_the_header_the_gateway_reads(headers_set):
    for client in ("outlook", "thunderbird"):
        assert headers_set[client] == {"all": [["X-CCM-Mode", "all"]],
                                       "external": [["X-CCM-Mode", "external"]],
                                       "off": []}


ROUTES = {  # the sender may Send Secure: (pat outside, bob a colleague)
    "all": {"pat@partner.test": "ccm", "bob@acme.test": "ccm"},
    "external": {"pat@partner.test": "ccm", "bob@acme.test": "internal"},
    "off": {"pat@partner.test": "external", "bob@acme.test": "internal"},
}


def received(gateway, ingress_server, sender: str, lines: list[list[str]]) -> Message:
    headers = "".join(f"{name}: {value}\n" for name, value in lines)
    raw = mail(sender=sender, to="pat@partner.test, bob@acme.test",
               headers=headers).replace("\n", "\r\n").encode()
    assert ingress_server().sendmail(sender, ["pat@partner.test", "bob@acme.test"], raw) == {}
    db.session.expire_all()
    message = gateway.latest()
    assert b"x-ccm-mode" not in message.raw.lower()  # not even kept
    return message


@pytest.mark.parametrize("mode", ["all", "external", "off"])
@pytest.mark.parametrize("client", ["outlook", "thunderbird"])
def test_a_permitted_sender_gets_the_choice(gateway, ingress_server, headers_set, client,
                                            mode):
    partner = gateway.network.mx("partner.test")
    message = received(gateway, ingress_server, "alice@acme.test", headers_set[client][mode])
    assert {r.address: r.route for r in message.recipients} == ROUTES[mode]
    gateway.run_queue()
    ordinary = [r for r in ROUTES[mode].values() if r != "ccm"]
    deliveries = partner.wait_for(1) if "external" in ordinary else []
    deliveries += gateway.relay.wait_for(1) if "internal" in ordinary else []
    # the notifications to CCM recipients go out by MX too: look at every delivery
    for delivery in [*deliveries, *partner.messages, *gateway.relay.messages]:
        assert b"x-ccm-mode" not in delivery.data.lower()


@pytest.mark.parametrize("client", ["outlook", "thunderbird"])
def test_a_sender_without_send_secure_is_delivered_as_usual(gateway, ingress_server,
                                                            headers_set, client):
    partner = gateway.network.mx("partner.test")
    message = received(gateway, ingress_server, "bob@acme.test", headers_set[client]["all"])
    assert {r.address: r.route for r in message.recipients} == ROUTES["off"]
    for recipient in message.recipients:
        assert "X-CCM-Mode ignored: the sender may not Send Secure" in [
            event.text for event in recipient.events]
    gateway.run_queue()
    (delivery,) = partner.wait_for(1)
    assert delivery.message["Subject"] == "Quarterly figures"
    assert b"x-ccm-mode" not in delivery.data.lower()
    (relayed,) = gateway.relay.wait_for(1)
    assert b"x-ccm-mode" not in relayed.data.lower()
