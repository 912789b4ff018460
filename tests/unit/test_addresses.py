"""Addresses and domain names: one reading, shared by the gateway, the forms and the import."""

import pytest

from app.domain import config_checks, config_file
from app.mail import addresses
from app.web.admin.settings import domains_problem

GOOD = ["acme.test", "Acme-Mail.test", "mail.acme.co.uk", "xn--bcher-kva.example",
        "bücher.example", "a.b", "x" * 63 + ".test"]
BAD = ["acme .test", " acme.test x", "acme", "acme.test.", ".acme.test", "acme..test",
       "-acme.test", "acme-.test", "ac_me.test", "acme.123", "alice@acme.test",
       "acme.test/x", "a" * 64 + ".test", ("a." * 127) + "test", "", " ", "\tacme.test",
       "acme\x00.test", "acme.test\n"]


@pytest.mark.parametrize("name", GOOD)
def test_domain_names_one_can_receive_mail_at(name):
    assert addresses.domain_problem(name) is None


@pytest.mark.parametrize("name", BAD)
def test_what_is_not_a_domain_name_is_refused_with_a_reason(name):
    assert addresses.domain_problem(name)


@pytest.mark.parametrize("name", BAD)
def test_the_import_and_the_settings_page_refuse_the_same_names(app, make_tenant, name):
    tenant = make_tenant("acme")
    assert domains_problem(tenant, [name])
    with pytest.raises(config_checks.ConfigFileError):
        config_file.import_text("tenants:\n  - slug: globex\n    name: Globex\n"
                                f"    domains: [{name!r}]\n")


@pytest.mark.parametrize(("address", "domain", "internal"), [
    ("alice@acme.test", "acme.test", True),
    ("  Alice@ACME.Test ", "acme.test", True),
    ("alice@mail.acme.test", "mail.acme.test", False),
    ("acme.test@partner.test", "partner.test", False),
    ('"a@b"@acme.test', "acme.test", True),
    ("no-at-sign", "no-at-sign", False),
])
def test_an_addresss_domain_and_whether_it_is_internal(address, domain, internal):
    assert addresses.domain_of(address) == domain
    assert addresses.is_internal(address, ["acme.test", "Acme-Mail.test"]) is internal
    assert addresses.normalise(address) == address.strip().lower()


# --- what generated mail may say it comes from ------------------------------------------

SENDERS = ["notifications@acme.test", "no-reply@acme.test", "o'brien+alerts@acme.test",
           "a.b.c@acme.test", "x_y=z{1}@acme.test", "N@mail.acme.test",
           "a" * 64 + "@acme.test", "secure@xn--bcher-kva.example"]
NOT_SENDERS = [
    "x@evil.example@acme.test", "a@b@acme.test", "@acme.test", "alice@", "alice",
    '"x@evil"@acme.test', '"a b"@acme.test', "a b@acme.test", "(comment)a@acme.test",
    "a(c)@acme.test", "<a@acme.test>", "a<@acme.test", "Bank <a@acme.test>",
    "a,b@acme.test", "a;b@acme.test", "a:b@acme.test", "a[b]@acme.test", "a\\b@acme.test",
    "a%evil.example@acme.test", "evil.example!a@acme.test", ".a@acme.test", "a.@acme.test",
    "a..b@acme.test", "a" * 65 + "@acme.test", "ü@acme.test", "a@bücher.example",
    "\u0430@acme.test",  # a Cyrillic a
    "a\u202eb@acme.test", "a\u200bb@acme.test", "a\u00a0b@acme.test", "\uff41@acme.test",
    *(f"a{chr(c)}b@acme.test" for c in [*range(0x20), 0x7F, 0x85, 0x9B]),
    "a@acme.test\n", "a@acme.test\r\nBcc: x@evil.example", "a@acme..test", "a@acme.test.",
    "a@-acme.test", "a@acme", "a@[127.0.0.1]", "a@acme.test>", "a@acme test",
]


@pytest.mark.parametrize("address", SENDERS)
def test_plain_addresses_can_be_a_sender(address):
    assert addresses.sender_problem(address) is None


@pytest.mark.parametrize("address", NOT_SENDERS)
def test_anything_else_cannot_be_a_sender_and_the_reason_shows_it_safely(address):
    problem = addresses.sender_problem(address)
    assert problem and "cannot be a sender address" in problem
    assert problem.isprintable()  # a control or an override is named, not printed


def test_a_sender_address_at_a_domain_in_another_script_is_at_its_ascii_form():
    assert addresses.sender_at("secure@xn--bcher-kva.example", ["bücher.example"])
    assert addresses.sender_at("secure@acme.test", ["ACME.test"])
    assert not addresses.sender_at("secure@evil.example", ["acme.test"])


@pytest.mark.parametrize("name", ["Acme Corp", "Acme Secure Mail", "Ärzte & Söhne (Köln)",
                                  "Ministry of Finance, Tax Office", "株式会社アクメ",
                                  "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # ZWNJ
                                  "O'Brien's", "Acme: secure"])
def test_names_that_can_stand_before_the_address(name):
    assert addresses.display_name_problem(name) is None


@pytest.mark.parametrize("name", [
    "Bank <security@bank.example>", "security@bank.example", "Bank <", "Bank >", 'Say "hi"',
    "Acme\r\nBcc: x@evil.example", "Acme\x00", "Acme\x1b[2J", "Acme\x7f", "Acme\x85",
    "Acme\u2028x", "Acme\u2029x", "Acme\u202eknaB", "\u2066Acme\u2069", "Acme\u200e",
    "Acme\tCorp"])
def test_names_that_would_fake_or_break_the_from_line_are_refused(name):
    problem = addresses.display_name_problem(name)
    assert problem and problem.isprintable()
