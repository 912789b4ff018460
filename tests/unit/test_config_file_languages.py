"""`ccm config` and languages (issue 19, part 2): the tenant's default language of
notifications, and its own templates for every language (KIND) or for one
(KIND.LANGUAGE), imported, exported and checked."""

from textwrap import dedent

import pytest
from sqlalchemy import select

from app.domain import config_file
from app.domain.config_checks import ConfigFileError
from app.extensions import db
from app.models import NotificationTemplate, Tenant

FILE = dedent(
    """\
    tenants:
      - slug: acme
        name: Acme Corp
        domains: [acme.test]
        default_language: de
        templates:
          secure_message:
            subject: "For everyone at {{ tenant_name }}"
            text: "{{ portal_url }}"
            html: "<p>{{ portal_url }}</p>"
          secure_message.de:
            subject: "Neu bei {{ tenant_name }}"
            text: "{{ portal_url }}"
            html: "<p>{{ portal_url }}</p>"
    """
)


def imported(text: str) -> None:
    config_file.import_text(text)
    db.session.commit()


def test_versions_per_language_and_the_default_language_go_in_and_out(app):
    imported(FILE)
    acme = db.session.scalar(select(Tenant).where(Tenant.slug == "acme"))
    assert acme.default_language == "de"
    assert sorted((t.kind, t.language or "", t.subject)
                  for t in db.session.query(NotificationTemplate)) == [
        ("secure_message", "", "For everyone at {{ tenant_name }}"),
        ("secure_message", "de", "Neu bei {{ tenant_name }}")]
    exported = config_file.export_text()
    assert "default_language: de" in exported and "secure_message.de:" in exported
    imported(exported)  # again: nothing doubles
    assert db.session.query(NotificationTemplate).count() == 2
    imported(FILE.replace("Neu bei", "Neues von"))
    db.session.expire_all()
    assert {t.subject for t in db.session.query(NotificationTemplate)} == {
        "For everyone at {{ tenant_name }}", "Neues von {{ tenant_name }}"}


@pytest.mark.parametrize(("change", "problem"), [
    (("secure_message.de:", "secure_message.xx:"), "alone or followed by a language code"),
    (("default_language: de", "default_language: klingon"), "expected a language code"),
])
def test_a_language_not_offered_is_refused(app, change, problem):
    with pytest.raises(ConfigFileError) as refused:
        config_file.import_text(FILE.replace(*change))
    assert problem in str(refused.value)
