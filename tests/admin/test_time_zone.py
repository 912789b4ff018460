"""The tenant's time zone: set on the Settings page, used by every page of the tenant."""

from __future__ import annotations

import re

from sqlalchemy import select
from support import post_form
from test_no_server_errors import _plausible, read_forms

from app.extensions import db
from app.models import AuditEvent, Tenant


def settings_form(client) -> dict:
    """The Settings form as the page fills it in."""
    page = client.get("/admin/settings").get_data(as_text=True)
    form = {f.target: f for f in read_forms(page, "/admin/settings")}["/admin/settings"]
    return {name: _plausible(name, entry, "admin@acme.test")
            for name, entry in form.fields.items() if entry.kind != "file"}


def zone_of(slug: str) -> str:
    return db.session.scalar(select(Tenant.time_zone).where(Tenant.slug == slug))


def test_a_tenant_starts_in_utc_and_its_pages_say_so(as_admin):
    assert zone_of("acme") == "UTC"
    assert settings_form(as_admin)["time_zone"] == "UTC"
    activity = as_admin.get("/account/activity").get_data(as_text=True)  # the sign-in
    assert re.search(r'<time datetime="[\d:T.-]+Z" data-style="minute" title="UTC">'
                     r"[^<]+ UTC</time>", activity)


def test_the_administrator_chooses_a_zone_and_the_pages_use_it(as_admin, acme):
    data = settings_form(as_admin)
    response = post_form(as_admin, "/admin/settings", {**data, "time_zone": " Europe/Berlin "},
                         follow_redirects=True)
    assert "Settings saved." in response.get_data(as_text=True)
    assert zone_of("acme") == "Europe/Berlin"
    saved = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "settings saved"))
    assert "time zone Europe/Berlin" in saved.detail
    audit = as_admin.get("/admin/audit").get_data(as_text=True)
    # the datetime attribute stays UTC; the text is Berlin's, CET or CEST by the season
    shown = re.findall(r'<time datetime="([\d:T.-]+)Z" data-style="second" '
                       r'title="Europe/Berlin">([^<]+)</time>', audit)
    assert shown and all(re.search(r" CES?T$", text) for _, text in shown)


def test_an_unknown_zone_is_refused_with_a_clear_error(as_admin):
    data = settings_form(as_admin)
    for wrong in ("Mars/Olympus", "../../etc/passwd", ""):
        page = post_form(as_admin, "/admin/settings", {**data, "time_zone": wrong})
        text = page.get_data(as_text=True)
        assert page.status_code == 200
        assert ("Use a time zone name such as Europe/Berlin" in text
                or "This field is required." in text), wrong
        assert 'aria-invalid="true"' in text
    assert zone_of("acme") == "UTC"


def test_another_tenants_zone_is_not_yours(as_admin, make_tenant, make_user):
    globex = make_tenant("globex", domains=["globex.test"], time_zone="Asia/Tokyo")
    make_user(globex, "admin@globex.test", role="admin")
    activity = as_admin.get("/account/activity").get_data(as_text=True)
    assert "<time" in activity and "JST" not in activity
