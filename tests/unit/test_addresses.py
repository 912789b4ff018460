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
