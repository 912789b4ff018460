"""``ccm config import`` / ``export``: round trips, idempotence, and clear refusals."""

import textwrap

import pytest
from sqlalchemy import select, text

from app.domain import config_checks, config_file, passwords
from app.extensions import db
from app.models import ApplicationSettings, Domain, Tenant, User

GOOD = textwrap.dedent(
    """\
    tenants:
      - slug: acme
        name: Acme Corp
        domains: [acme.test, Acme-Mail.test]
        visibility_days: 30
        internal_relay: smtp://127.0.0.1:2626
        time_zone: Europe/Berlin
        portal_name: Acme Secure Mail
        expiry_warning_days: 5
        second_factor_external: required
        second_factor_internal: "off"
        mail_from: Secure@Acme.test
        application_settings:
          - {name: Default, default: true, portal_ccm: false, send_secure: false}
          - {name: Legal, portal_ccm: true, send_secure: true}
        users:
          - {email: admin@acme.test, role: admin, password: "plum orbit lantern meadow"}
          - {email: alice@acme.test, role: internal, application_settings: Legal,
             password: "correct horse battery staple"}
          - {email: bob@acme.test, role: internal, send_secure: true}
        policies:
          - {name: Secure keyword, kind: content, phrases: ["[secure]"], where: [subject, body]}
          - {name: Law firm, kind: route, from: "*@acme.test", to: "*@lawfirm.test",
             visibility_days: 7}
          - {name: Bank TLS, kind: secure_delivery, to: "*@bank.test", tls: verify,
             fallback: ccm}
        templates:
          secure_message:
            subject: "Secure mail from {{ tenant_name }}"
            text: "Read it at {{ portal_url }}"
            html: "<p>Read it at <a href='{{ portal_url }}'>{{ portal_url }}</a></p>"
      - slug: globex
        name: Globex
        domains: [globex.test]
    """
)


def snapshot() -> list:
    """Every row of every table this import touches, password hashes included."""
    rows = []
    for table in ("tenant", "domain", "application_settings", "users", "policy",
                  "notification_template"):
        rows.append(db.session.execute(text(f"SELECT * FROM {table} ORDER BY id")).all())
    return rows


def import_(text_: str) -> config_file.ImportResult:
    result = config_file.import_text(text_)
    db.session.commit()
    return result


def test_import_creates_everything(app):
    result = import_(GOOD)
    acme = db.session.scalar(select(Tenant).where(Tenant.slug == "acme"))
    assert acme.name == "Acme Corp"
    assert [d.name for d in acme.domains] == ["acme-mail.test", "acme.test"]
    assert acme.internal_relay == "smtp://127.0.0.1:2626"
    assert acme.default_settings.name == "Default"
    alice = db.session.scalar(select(User).where(User.email == "alice@acme.test"))
    assert alice.role == "internal" and alice.kind == "internal"
    assert alice.may_use_portal_ccm and alice.may_send_secure
    assert passwords.verify_password(alice.password_hash, "correct horse battery staple")
    assert alice.must_change_password is False
    bob = db.session.scalar(select(User).where(User.email == "bob@acme.test"))
    # No profile of his own: the tenant default says no, his own override says yes.
    assert bob.may_send_secure and not bob.may_use_portal_ccm
    # No password given: one is generated, reported once, and must be changed.
    assert [(slug, email) for slug, email, _ in result.generated] == [("acme", "bob@acme.test")]
    assert passwords.verify_password(bob.password_hash, result.generated[0][2])
    assert bob.must_change_password


def test_importing_twice_changes_nothing(app):
    import_(GOOD)
    before = snapshot()
    result = import_(GOOD)
    assert (result.created, result.updated, result.generated) == (0, 0, [])
    assert snapshot() == before


def test_round_trip_import_export_import_changes_nothing(app):
    import_(GOOD)
    exported = config_file.export_text()
    before = snapshot()
    result = import_(exported)
    assert (result.created, result.updated, result.generated) == (0, 0, [])
    assert snapshot() == before
    assert config_file.export_text() == exported


def test_a_time_zone_is_imported_and_exported_and_utc_is_the_default(app):
    import_(GOOD)
    zones = dict(db.session.execute(select(Tenant.slug, Tenant.time_zone)).all())
    assert zones == {"acme": "Europe/Berlin", "globex": "UTC"}
    assert config_file.export_text().count("time_zone:") == 1


def test_the_portal_name_sender_address_warning_and_second_factors_travel(app):
    import_(GOOD)
    acme = db.session.scalar(select(Tenant).where(Tenant.slug == "acme"))
    assert (acme.portal_name, acme.mail_from, acme.expiry_warning_days,
            acme.second_factor_external, acme.second_factor_internal) == (
        "Acme Secure Mail", "secure@acme.test", 5, "required", "off")
    globex = db.session.scalar(select(Tenant).where(Tenant.slug == "globex"))
    assert (globex.portal_name, globex.mail_from, globex.expiry_warning_days,
            globex.second_factor_external) == (None, None, 3, "optional")
    exported = config_file.export_text()
    assert exported.count("mail_from: secure@acme.test") == 1
    assert "second_factor_internal: 'off'" in exported  # YAML's off is a boolean


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("mail_from", "secure@elsewhere.test", "expected an address at one of this tenant's"),
    ("mail_from", "x@evil@acme.test", "cannot be a sender address"),
    ("mail_from", "ü@acme.test", "use only ASCII"),
    ("mail_from", "a b@acme.test", "cannot be a sender address"),
    ("mail_from", 7, "expected an email address"),
    ("portal_name", "Acme <ceo@acme.test>", "portal_name"),
    ("portal_name", "", "expected a non-empty text"),
    ("expiry_warning_days", -1, "0 (never) to 365"),
    ("expiry_warning_days", True, "0 (never) to 365"),
    ("expiry_warning_days", 366, "0 (never) to 365"),
    ("second_factor_external", "always", "expected off, optional or required"),
    ("second_factor_internal", False, "expected off, optional or required"),
])
def test_each_new_tenant_setting_refuses_what_the_settings_page_refuses(
        app, key, value, expected):
    data = config_checks.yaml.safe_load(GOOD)
    data["tenants"][1][key] = value
    with pytest.raises(config_checks.ConfigFileError) as refused:
        config_file.import_text(config_checks.yaml.safe_dump(data))
    assert expected in str(refused.value) and f"tenants[1].{key}" in str(refused.value)


def test_export_never_contains_passwords_or_hashes(app):
    import_(GOOD)
    exported = config_file.export_text()
    assert "password" not in exported
    assert "argon2" not in exported
    assert "plum orbit" not in exported


def test_an_export_imports_into_an_empty_database(app):
    import_(GOOD)
    exported = config_file.export_text()
    for table in ("notification_template", "policy", "users", "application_settings",
                  "domain", "tenant"):
        db.session.execute(text(f"DELETE FROM {table}"))
    db.session.commit()
    result = import_(exported)
    assert config_file.export_text() == exported
    # Passwords are never exported, so every account gets a generated one.
    assert len(result.generated) == 3


def test_an_update_changes_just_what_differs(app):
    import_(GOOD)
    result = import_(GOOD.replace("name: Acme Corp", "name: Acme Corporation"))
    assert (result.created, result.updated) == (0, 1)
    assert db.session.scalar(select(Tenant.name).where(Tenant.slug == "acme")) == \
        "Acme Corporation"


def test_the_operators_file_may_aim_a_relay_anywhere_and_says_which_it_trusts(app):
    import_(GOOD.replace("smtp://127.0.0.1:2626", "SMTP://10.0.0.5"))
    acme = db.session.scalar(select(Tenant).where(Tenant.slug == "acme"))
    assert (acme.internal_relay, acme.internal_relay_trusted) == ("smtp://10.0.0.5:25", True)
    # A relay a tenant administrator set, exported and imported again, stays theirs...
    acme.internal_relay, acme.internal_relay_trusted = "smtp://relay.acme.test:25", False
    db.session.commit()
    exported = config_file.export_text()
    assert "internal_relay: smtp://relay.acme.test:25\n  internal_relay_trusted: false" \
        in exported
    assert import_(exported).updated == 0
    db.session.refresh(acme)
    assert (acme.internal_relay, acme.internal_relay_trusted) == (
        "smtp://relay.acme.test:25", False)
    # ...until the operator's file vouches for it.
    import_(exported.replace("  internal_relay_trusted: false\n", ""))
    db.session.refresh(acme)
    assert (acme.internal_relay, acme.internal_relay_trusted) == (
        "smtp://relay.acme.test:25", True)


def test_a_changed_password_in_the_file_is_applied(app):
    import_(GOOD)
    import_(GOOD.replace("plum orbit lantern meadow", "a brand new long password"))
    admin = db.session.scalar(select(User).where(User.email == "admin@acme.test"))
    assert passwords.verify_password(admin.password_hash, "a brand new long password")


def test_policies_keep_the_files_order_and_templates_apply(app):
    import_(GOOD)
    acme = db.session.scalar(select(Tenant).where(Tenant.slug == "acme"))
    assert [(p.name, p.kind) for p in acme.policies] == [
        ("Secure keyword", "content"), ("Law firm", "route"), ("Bank TLS", "secure_delivery")]
    assert acme.policies[0].phrases == ["[secure]"]
    assert acme.policies[1].visibility_days == 7
    assert (acme.policies[2].tls, acme.policies[2].fallback) == ("verify", "ccm")
    from app.delivery import mail_templates

    rendered = mail_templates.build("secure_message", to="x@y.test", tenant=acme,
                                   **mail_templates.SAMPLES)
    assert rendered["Subject"] == "Secure mail from Acme Corp"
    reordered = GOOD.replace(
        '      - {name: Secure keyword, kind: content, phrases: ["[secure]"], '
        'where: [subject, body]}\n', "")
    assert reordered != GOOD
    import_(reordered)
    db.session.expire_all()
    assert [p.name for p in acme.policies] == ["Law firm", "Bank TLS", "Secure keyword"]


def test_the_default_profile_moves(app):
    import_(GOOD)
    import_(GOOD.replace("{name: Default, default: true,", "{name: Default,")
            .replace("{name: Legal,", "{name: Legal, default: true,"))
    acme = db.session.scalar(select(Tenant).where(Tenant.slug == "acme"))
    assert acme.default_settings.name == "Legal"


BAD = [
    ("not: [valid", "line 1", "not valid YAML"),
    ("- just a list", "line 1", "expected a mapping with a list under 'tenants'"),
    ("tenants:\n  - slug: acme\n", "line 2, tenants[0]", "'name' is required"),
    ("tenants:\n  - {slug: Acme Corp, name: A}\n", "line 2, tenants[0].slug",
     "lower-case letters"),
    ("tenants:\n  - slug: acme\n    name: A\n    colour: red\n", "line 4, tenants[0].colour",
     "unknown key"),
    ("tenants:\n  - slug: acme\n    name: A\n    users:\n"
     "      - {email: a@acme.test, role: boss}\n",
     "line 5, tenants[0].users[0].role", "expected one of admin, internal, external"),
    ("tenants:\n  - slug: acme\n    name: A\n    users:\n"
     "      - {email: a@acme.test, role: admin, password: short}\n",
     "line 5, tenants[0].users[0].password", "at least 12 characters"),
    ("tenants:\n  - slug: acme\n    name: A\n    users:\n"
     "      - {email: a@acme.test, role: admin, application_settings: Nope}\n",
     "line 5, tenants[0].users[0].application_settings", "no profile named 'Nope'"),
    ("tenants:\n  - slug: acme\n    name: A\n    time_zone: Mars/Olympus\n",
     "line 4, tenants[0].time_zone", "expected an IANA time zone name"),
    ("tenants:\n  - slug: acme\n    name: A\n    visibility_days: forever\n",
     "line 4, tenants[0].visibility_days", "whole number of days"),
    ("tenants:\n  - slug: acme\n    name: A\n    internal_relay: relay.acme.test\n",
     "line 4, tenants[0].internal_relay", "with nothing else in it"),
    ("tenants:\n  - slug: acme\n    name: A\n    internal_relay: smtp://a@127.0.0.1\n",
     "line 4, tenants[0].internal_relay", "with nothing else in it"),
    ("tenants:\n  - slug: acme\n    name: A\n    internal_relay: smtp://0x7f.1\n",
     "line 4, tenants[0].internal_relay", "is neither a host name"),
    ("tenants:\n  - slug: acme\n    name: A\n    internal_relay: smtp://relay.acme.test.\n",
     "line 4, tenants[0].internal_relay", "without the final dot"),
    ("tenants:\n  - slug: acme\n    name: A\n    internal_relay: smtp://10.0.0.5:99999\n",
     "line 4, tenants[0].internal_relay", "from 1 to 65535"),
    ("tenants:\n  - slug: acme\n    name: A\n    internal_relay: smtp://10.0.0.5\n"
     "    internal_relay_trusted: maybe\n",
     "line 5, tenants[0].internal_relay_trusted", "expected true or false"),
    ("tenants:\n  - {slug: acme, name: A, domains: [x.test]}\n"
     "  - {slug: globex, name: G, domains: [x.test]}\n",
     "line 3, tenants[1].domains[0]", "already belongs to tenant 'acme'"),
    ("tenants:\n  - slug: acme\n    name: A\n    application_settings:\n"
     "      - {name: A, default: true}\n      - {name: B, default: true}\n",
     "line 4, tenants[0].application_settings", "only one profile may be the default"),
    ("tenants:\n  - slug: acme\n    name: A\n    policies:\n      - {name: P, kind: magic}\n",
     "line 5, tenants[0].policies[0].kind", "expected one of route, content, secure_delivery"),
    ("tenants:\n  - slug: acme\n    name: A\n    policies:\n      - {name: P, kind: content}\n",
     "line 5, tenants[0].policies[0].phrases", "expected a list of words or phrases"),
    ("tenants:\n  - slug: acme\n    name: A\n    policies:\n"
     "      - {name: P, kind: secure_delivery, tls: maybe, fallback: ccm}\n",
     "line 5, tenants[0].policies[0].tls", "expected encrypt or verify"),
    ("tenants:\n  - slug: acme\n    name: A\n    policies:\n"
     "      - {name: P, kind: route, to: nobody}\n",
     "line 5, tenants[0].policies[0].to", "expected an address"),
    ("tenants:\n  - slug: acme\n    name: A\n    policies:\n"
     "      - {name: P, kind: route, tls: verify}\n",
     "line 5, tenants[0].policies[0].tls", "a route policy has no tls"),
    ("tenants:\n  - slug: acme\n    name: A\n    templates:\n      welcome: {}\n",
     "line 5, tenants[0].templates.welcome", "expected one of secure_message"),
    ("tenants:\n  - slug: acme\n    name: A\n    templates:\n      password:\n"
     "        subject: '{{ password.__class__ }}'\n        text: x\n        html: x\n",
     "line 5, tenants[0].templates.password", "not allowed in a template"),
    ("tenants:\n  - slug: acme\n    name: A\n    templates:\n      password:\n"
     "        subject: '{% if %}'\n        text: x\n        html: x\n",
     "line 5, tenants[0].templates.password", "Expected an expression"),
]


@pytest.mark.parametrize(("document", "where", "message"), BAD)
def test_bad_files_are_refused_naming_line_and_key(app, document, where, message):
    with pytest.raises(config_checks.ConfigFileError) as refused:
        config_file.import_text(document)
    assert any(p.startswith(where) and message in p for p in refused.value.problems), \
        refused.value.problems


def test_a_bad_file_imports_nothing_at_all(app, runner, tmp_path):
    import_(GOOD)
    before = snapshot()
    # The first tenant is fine and would change; the second has an error.
    broken = GOOD.replace("name: Acme Corp", "name: Acme Renamed").replace(
        "name: Globex", "name: Globex\n    visibility_days: -1")
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    result = runner.invoke(args=["config", "import", str(path)])
    assert result.exit_code == 1
    assert "nothing was changed" in result.output
    assert "tenants[1].visibility_days" in result.output
    db.session.expire_all()
    assert snapshot() == before


def test_a_domain_of_another_tenant_in_the_database_is_refused(app):
    import_(GOOD)
    with pytest.raises(config_checks.ConfigFileError, match="already belongs to tenant 'acme'"):
        config_file.import_text("tenants:\n  - {slug: initech, name: I, domains: [acme.test]}\n")


def test_command_line_import_and_export(app, runner, tmp_path):
    path = tmp_path / "ccm.yaml"
    path.write_text(GOOD)
    result = runner.invoke(args=["config", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "new password for bob@acme.test at acme" in result.output
    exported = runner.invoke(args=["config", "export"])
    assert exported.exit_code == 0
    assert "slug: acme" in exported.output
    again = runner.invoke(args=["config", "import", str(path)])
    assert "0 created, 0 updated" in again.output
    assert db.session.scalar(select(db.func.count()).select_from(Domain)) == 3
    assert db.session.scalar(select(db.func.count()).select_from(ApplicationSettings)) == 2


def test_the_operators_file_vouches_for_a_domain_a_tenant_only_waits_on(app):
    """A pending domain (tests/admin/test_domain_proof.py) is no claim against the file,
    is left out of an export, and is verified when the operator's file names it."""
    from app.domain import domain_proof

    import_(GOOD)
    acme = db.session.scalar(select(Tenant).filter_by(slug="acme"))
    globex = db.session.scalar(select(Tenant).filter_by(slug="globex"))
    acme.domains.append(domain_proof.pending("bank.example"))
    globex.domains.append(domain_proof.pending("bank.example"))
    db.session.commit()
    assert "bank.example" not in config_file.export_text()
    import_("tenants:\n  - {slug: globex, name: Globex, domains: [globex.test, bank.example]}\n")
    owners = db.session.execute(select(Tenant.slug, Domain.verified).join(Domain)
                                .where(Domain.name == "bank.example").order_by(Tenant.slug)).all()
    assert owners == [("acme", False), ("globex", True)]
