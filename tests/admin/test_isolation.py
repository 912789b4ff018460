"""Tenant isolation and the console's guards, as matrices over every administrator URL.

The URLs come from ``app.url_map`` (every endpoint starting with ``admin.``), their path
parameters filled with real ids, so that a page added later is covered without editing
this file. A path parameter this file does not know fails loudly instead of being skipped.
"""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import product

import pytest
from sqlalchemy import select
from support import PASSWORD, csrf_token, mail, post_form

from app.clock import utcnow
from app.domain import ingest
from app.extensions import db
from app.models import (
    ApplicationSettings,
    AuditEvent,
    Domain,
    Message,
    NotificationTemplate,
    Policy,
    Recipient,
    Tenant,
    User,
)

#: rows that only record that a session was used (last seen): they may change on any request
BOOKKEEPING = {"auth_session"}
#: path parameters that name an object of one tenant
OBJECT_PARAMETERS = {"policy_id", "user_id", "profile_id", "public_id", "domain_id"}
#: path parameters that name no tenant's object, and the value to give them
OTHER_PARAMETERS = {"kind": "secure_message"}
METHODS = ("GET", "POST")

#: plausible form data per endpoint: what would be accepted with a valid CSRF token
FORMS = {
    "admin.policy": {"name": "Taken over", "kind": "route", "enabled": "y",
                     "from_pattern": "", "to_pattern": "*@evil.test", "phrases": "",
                     "where": ["subject", "body"], "tls": "encrypt", "fallback": "ccm",
                     "visibility_days": ""},
    "admin.move_policy": {"direction": "up"},
    "admin.user": {"role": "admin", "application_settings": "", "portal_ccm": "yes",
                   "send_secure": "yes", "disabled": "y"},
    "admin.new_user": {"email": "mallory@acme.test", "role": "admin",
                       "application_settings": "", "portal_ccm": "", "send_secure": ""},
    "admin.profile": {"name": "Taken over", "portal_ccm": "y", "send_secure": "y",
                      "is_default": "y"},
    "admin.tester": {"sender": "alice@acme.test", "recipients": "pat@partner.test",
                     "subject": "x", "body": "x", "mode": "off"},
    "admin.settings": {"name": "Taken over", "portal_name": "", "domains": "acme.test",
                       "internal_relay": "", "visibility_days": "30",
                       "expiry_warning_days": "3", "first_contact": "password",
                       "activation_hours": "72", "second_factor_external": "off",
                       "second_factor_internal": "off", "mail_from": ""},
    "admin.template": {"subject": "Taken over", "text": "x", "html": "x"},
    "admin.preview": {"subject": "Taken over", "text": "x", "html": "x"},
    "admin.new_tenant": {"name": "Initech", "slug": "initech", "domains": "initech.test",
                         "admin_email": "boss@initech.test"},
    "admin.revoke": {"recipient": "all"},
}

#: cross-tenant requests the brief names: the generated matrix must contain at least these
NAMED = {
    ("GET", "admin.policy"), ("POST", "admin.policy"), ("POST", "admin.move_policy"),
    ("POST", "admin.toggle_policy"), ("POST", "admin.delete_policy"),
    ("GET", "admin.user"), ("POST", "admin.user"), ("POST", "admin.reset_password"),
    ("POST", "admin.unlock"), ("GET", "admin.profile"), ("POST", "admin.profile"),
    ("GET", "admin.tracked"), ("POST", "admin.revoke"),
}


# --- two tenants with something of everything ----------------------------------------


def _policy(tenant, position, name, kind, **values) -> Policy:
    values.setdefault("phrases", [])
    values.setdefault("where", ["subject", "body"])
    return Policy(tenant_id=tenant.id, position=position, name=name, kind=kind, **values)


def _received(subject, sender, to, **kw) -> Message:
    raw = mail(subject=subject, sender=sender, to=", ".join(to)).replace("\n", "\r\n").encode()
    return ingest.receive(raw, sender, to, **kw)


@pytest.fixture
def world(app, make_tenant, make_user):
    """acme and globex, each with an admin, users, policies, a profile, a template override,
    messages (CCM, internal relay and MX) and audit events; plus a platform-wide event."""
    acme = make_tenant("acme", domains=["acme.test"])
    globex = make_tenant("globex", domains=["globex.test"])
    for tenant, domain, external in ((acme, "acme.test", "pat@partner.test"),
                                     (globex, "globex.test", "quinn@vendor.test")):
        name = tenant.slug.title()
        make_user(tenant, f"admin@{domain}", role="admin")
        make_user(tenant, f"{tenant.slug[0]}user@{domain}", role="internal")
        # locked, so that an unlock that went through would show
        locked = make_user(tenant, f"locked@{domain}", role="internal",
                           locked_until=utcnow() + timedelta(hours=1))
        locked.failed_signins = 7
        make_user(tenant, external)
        db.session.add_all([
            _policy(tenant, 0, f"{name} partners", "route",
                    to_pattern="*@" + external.partition("@")[2]),
            _policy(tenant, 1, f"{name} words", "content", phrases=[f"{tenant.slug}-secret"]),
            _policy(tenant, 2, f"{name} bank TLS", "secure_delivery", enabled=False,
                    to_pattern="*@bank.test", tls="verify", fallback="bounce"),
        ])
        db.session.add(ApplicationSettings(tenant_id=tenant.id, name=f"{name} senders",
                                           portal_ccm=True, send_secure=True))
        db.session.add(AuditEvent(tenant_id=tenant.id, actor=f"admin@{domain}",
                                  client_address="192.0.2.7", action="policy created",
                                  detail=f"{name} partners (route)"))
        db.session.commit()
        sender = f"{tenant.slug[0]}user@{domain}"
        _received(f"{name} quarterly", sender, [external, f"admin@{domain}"])
        _received(f"{name} invoice", sender, ["someone@elsewhere.test"])
        _received(f"{name} merger", sender, ["someone@elsewhere.test"], mode="all")
        db.session.commit()
    db.session.add(NotificationTemplate(tenant_id=acme.id, kind="secure_message",
                                        subject="Acme own {{ tenant_name }}", text="x",
                                        html="x"))
    for kind in ("password", "expiry_warning"):
        db.session.add(NotificationTemplate(tenant_id=globex.id, kind=kind,
                                            subject="Globex own notice", text="Globex own",
                                            html="<p>Globex own</p>"))
    db.session.add(AuditEvent(tenant_id=None, actor="operator@platform.test",
                              action="tenant created", detail="Platform-wide: globex created"))
    db.session.commit()
    return {"acme": acme, "globex": globex}


def objects_of(tenant: Tenant) -> dict[str, list]:
    """Every value each object path parameter can take for ``tenant``."""
    return {
        "policy_id": list(db.session.scalars(select(Policy.id).where(
            Policy.tenant_id == tenant.id))),
        "user_id": list(db.session.scalars(select(User.id).where(User.tenant_id == tenant.id))),
        "profile_id": list(db.session.scalars(select(ApplicationSettings.id).where(
            ApplicationSettings.tenant_id == tenant.id))),
        "public_id": list(db.session.scalars(select(Message.public_id).where(
            Message.tenant_id == tenant.id))),
        "domain_id": list(db.session.scalars(select(Domain.id).where(
            Domain.tenant_id == tenant.id))),
    }


# --- helpers ---------------------------------------------------------------------------


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table (but session bookkeeping), to compare before and after."""
    db.session.expire_all()
    return {
        name: [tuple(row) for row in db.session.execute(
            select(table).order_by(*table.primary_key.columns))]
        for name, table in sorted(db.metadata.tables.items()) if name not in BOOKKEEPING
    }


def changed(before: dict, after: dict) -> list[str]:
    return [name for name in before if before[name] != after[name]]


def fill(rule, values: dict) -> str:
    """The rule's path with each parameter replaced by its value."""
    def value(match):
        name = match.group(1)
        if name in values:
            return str(values[name])
        if name in OTHER_PARAMETERS:
            return OTHER_PARAMETERS[name]
        raise KeyError(f"{rule.rule}: no value for the path parameter {name!r}; "
                       f"add it to OTHER_PARAMETERS or OBJECT_PARAMETERS")
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", value, rule.rule)


def admin_rules(app):
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.")]
    assert len(rules) >= 25, "the console has lost pages, or url_map is not what it was"
    return rules


def methods(rule) -> list[str]:
    found = sorted(rule.methods & set(METHODS))
    assert found, f"{rule.rule}: neither GET nor POST ({rule.methods})"
    return found


def every_request(app, objects: dict[str, list]):
    """(method, endpoint, url) for every admin rule, filled with ``objects``' first ids."""
    for rule in admin_rules(app):
        url = fill(rule, {name: ids[0] for name, ids in objects.items()})
        for method in methods(rule):
            yield method, rule.endpoint, url


def signed_in(app, email: str, slug: str):
    """A new browser signed in as ``email`` at ``slug``."""
    browser = app.test_client()
    response = post_form(browser, f"/t/{slug}/sign-in", {"email": email, "password": PASSWORD})
    assert response.status_code == 302, (email, response.status_code)
    assert "/sign-in" not in response.headers["Location"], email
    return browser


def send(browser, method: str, endpoint: str, url: str, token: str | None):
    if method == "GET":
        return browser.get(url)
    data = dict(FORMS.get(endpoint, {}))
    if token is not None:
        data["csrf_token"] = token
    return browser.post(url, data=data)


@pytest.fixture
def acme_admin(app, client, world):
    return signed_in(app, "admin@acme.test", "acme")


# --- an acme administrator and globex's objects -----------------------------------------


def test_every_url_naming_a_globex_object_is_404_and_changes_nothing(app, world, acme_admin):
    foreign = objects_of(world["globex"])
    assert all(foreign.values()), foreign
    token = csrf_token(acme_admin, "/admin/policies")
    tried, failures = set(), []
    for rule in admin_rules(app):
        named = sorted(rule.arguments & OBJECT_PARAMETERS)
        unknown = rule.arguments - OBJECT_PARAMETERS - set(OTHER_PARAMETERS)
        assert not unknown, f"{rule.rule}: unknown path parameters {unknown}"
        if not named:
            continue
        for ids in product(*(foreign[name] for name in named)):
            url = fill(rule, dict(zip(named, ids, strict=True)))
            for method in methods(rule):
                tried.add((method, rule.endpoint))
                before = snapshot()
                response = send(acme_admin, method, rule.endpoint, url, token)
                after = snapshot()
                if response.status_code != 404:
                    failures.append(f"{method} {url}: {response.status_code}")
                if changed(before, after):
                    failures.append(f"{method} {url} changed {changed(before, after)}")
    assert tried >= NAMED, f"not tried: {NAMED - tried}"
    assert not failures, "\n".join(failures)


def test_the_same_requests_for_acmes_own_objects_are_not_404(app, world, acme_admin):
    """The control for the matrix above: the URLs are right, only the owner differs."""
    token = csrf_token(acme_admin, "/admin/policies")
    own = objects_of(world["acme"])
    # the colleague, not the admin: no one may lock themselves out
    own["user_id"] = [db.session.scalar(select(User.id).where(User.email == "auser@acme.test"))]
    for rule in admin_rules(app):
        if not rule.arguments & OBJECT_PARAMETERS or rule.endpoint == "admin.delete_policy":
            continue
        url = fill(rule, {name: ids[0] for name, ids in own.items()})
        for method in methods(rule):
            response = send(acme_admin, method, rule.endpoint, url, token)
            assert response.status_code in (200, 302), (method, url, response.status_code)


def globex_traces(world) -> list[str]:
    """What of globex could show on a page: names, addresses, subjects, ids, links."""
    foreign = objects_of(world["globex"])
    traces = ["globex", "Globex", "vendor.test", "Platform-wide", "Globex own"]
    traces += foreign["public_id"]
    return traces


def links_to(world) -> re.Pattern:
    foreign = objects_of(world["globex"])
    paths = [f"/admin/policies/{i}" for i in foreign["policy_id"]]
    paths += [f"/admin/people/{i}" for i in foreign["user_id"]]
    paths += [f"/admin/profiles/{i}" for i in foreign["profile_id"]]
    return re.compile("|".join(re.escape(p) + r"(?![0-9])" for p in paths))


LIST_PAGES = ["/admin/policies", "/admin/people", "/admin/people?q=", "/admin/people?q=globex",
              "/admin/people?q=vendor", "/admin/profiles", "/admin/tracking",
              "/admin/tracking?sender=&recipient=&subject=&since=&until=&route=",
              "/admin/tracking?subject=globex", "/admin/tracking?recipient=vendor.test",
              "/admin/tracking?route=ccm", "/admin/audit", "/admin/audit?q=",
              "/admin/audit?q=globex", "/admin/audit?q=Platform", "/admin/templates",
              "/admin/templates/password",
              "/admin/templates/expiry_warning", "/admin/settings"]


@pytest.mark.parametrize("path", LIST_PAGES)
def test_globex_never_shows_on_acmes_pages(world, acme_admin, path):
    response = acme_admin.get(path)
    assert response.status_code == 200, path
    # the search fields echo what was asked: only the rest of the page counts
    page = re.sub(r'value="[^"]*"', 'value=""', response.get_data(as_text=True))
    for trace in globex_traces(world):
        assert trace not in page, (path, trace)
    assert not links_to(world).search(page), path


def test_acmes_own_rows_do_show_there(world, acme_admin):
    """The control: the same pages list acme's own objects, so an empty page proves nothing."""
    own = objects_of(world["acme"])
    pages = {path: acme_admin.get(path).get_data(as_text=True) for path in LIST_PAGES}
    assert "Acme partners" in pages["/admin/policies"]
    assert "pat@partner.test" in pages["/admin/people"]
    assert "Acme senders" in pages["/admin/profiles"]
    for public_id in own["public_id"]:
        assert public_id in pages["/admin/tracking"]
        assert public_id in pages[
            "/admin/tracking?sender=&recipient=&subject=&since=&until=&route="]
    assert "Acme partners (route)" in pages["/admin/audit"]
    # acme has its own secure message notification and nothing else
    assert pages["/admin/templates"].count("Your own version") == 1
    assert "Globex own notice" not in pages["/admin/templates/password"]


def test_globex_sees_its_own_and_not_acmes(app, world):
    globex_admin = signed_in(app, "admin@globex.test", "globex")
    policies = globex_admin.get("/admin/policies").get_data(as_text=True)
    assert "Globex partners" in policies and "Acme" not in policies
    tracking = globex_admin.get("/admin/tracking").get_data(as_text=True)
    assert all(p in tracking for p in objects_of(world["globex"])["public_id"])
    assert not any(p in tracking for p in objects_of(world["acme"])["public_id"])
    templates = globex_admin.get("/admin/templates").get_data(as_text=True)
    assert templates.count("Your own version") == 2
    editor = globex_admin.get("/admin/templates/password").get_data(as_text=True)
    assert "Globex own notice" in editor


def test_foreign_ids_inside_forms_are_refused(app, world, acme_admin):
    """A globex profile given to an acme user, a globex recipient revoked through an acme
    message, the tester asked about a globex sender: nothing crosses over."""
    foreign = objects_of(world["globex"])
    colleague = db.session.scalars(select(User).where(User.email == "auser@acme.test")).one()
    before = snapshot()
    # everything as it is but the profile: the only change there could be is the foreign one
    post_form(acme_admin, f"/admin/people/{colleague.id}", {
        "role": "internal", "portal_ccm": "", "send_secure": "",
        "application_settings": foreign["profile_id"][0]})
    assert not changed(before, snapshot())
    assert db.session.get(User, colleague.id).application_settings_id not in foreign["profile_id"]

    acme_message = db.session.scalars(select(Message).where(
        Message.tenant_id == world["acme"].id, Message.subject == "Acme quarterly")).one()
    globex_recipient = db.session.scalars(select(Recipient).join(Message).where(
        Message.tenant_id == world["globex"].id, Recipient.state == "held")).first()
    before = snapshot()
    post_form(acme_admin, f"/admin/tracking/{acme_message.public_id}/revoke",
              {"recipient": str(globex_recipient.id)},
              form_path=f"/admin/tracking/{acme_message.public_id}")
    assert not changed(before, snapshot())

    # globex's content policy ("globex-secret") never applies to acme's tester
    response = post_form(acme_admin, "/admin/policies/test", {
        "sender": "guser@globex.test", "recipients": "someone@elsewhere.test",
        "subject": "globex-secret", "body": "globex-secret", "mode": "off"})
    page = response.get_data(as_text=True)
    assert "External recipient: MX resolution" in page and "Globex words" not in page


# --- everyone who is not an administrator ----------------------------------------------


@pytest.mark.parametrize(("email", "kind"), [("auser@acme.test", "internal user"),
                                             ("pat@partner.test", "external recipient")])
def test_non_administrators_get_403_on_every_admin_url(app, world, client, email, kind):
    browser = signed_in(app, email, "acme")
    token = csrf_token(browser, "/inbox/")  # a valid token, so that CSRF is not what refuses
    failures = []
    requests = list(every_request(app, objects_of(world["acme"])))
    assert len(requests) >= 30
    for method, endpoint, url in requests:
        before = snapshot()
        response = send(browser, method, endpoint, url, token)
        if response.status_code != 403:
            failures.append(f"{kind} {method} {url}: {response.status_code}")
        if changed(before, snapshot()):
            failures.append(f"{kind} {method} {url} changed {changed(before, snapshot())}")
    assert not failures, "\n".join(failures)


def test_signed_out_visitors_never_reach_an_admin_page(app, world, client):
    token = csrf_token(client, "/sign-in")
    for method, endpoint, url in every_request(app, objects_of(world["acme"])):
        before = snapshot()
        response = send(client, method, endpoint, url, token)
        assert response.status_code in (302, 401), (method, url, response.status_code)
        if response.status_code == 302:
            assert "/sign-in" in response.headers["Location"], (method, url)
        assert not changed(before, snapshot()), (method, url)


# --- CSRF ------------------------------------------------------------------------------


@pytest.mark.parametrize("token_kind", ["missing", "empty", "forged", "another session's"])
def test_every_admin_post_without_a_valid_csrf_token_is_400_and_changes_nothing(
        app, world, acme_admin, token_kind):
    admin = db.session.scalars(select(User).where(User.email == "admin@acme.test")).one()
    admin.is_platform_admin = True  # so that the tenants forms would otherwise work too
    db.session.commit()
    token = {"missing": None, "empty": "", "forged": "IjAwMDAwMDAwMDAwMDAwMDAi.forged.sig",
             "another session's": None}[token_kind]
    if token_kind == "another session's":
        token = csrf_token(signed_in(app, "admin@globex.test", "globex"), "/admin/policies")
    own = objects_of(world["acme"])
    own["user_id"] = [db.session.scalar(select(User.id).where(User.email == "auser@acme.test"))]
    posts = [(m, e, u) for m, e, u in every_request(app, own) if m == "POST"]
    assert len(posts) >= 18
    failures = []
    for method, endpoint, url in posts:
        before = snapshot()
        response = send(acme_admin, method, endpoint, url, token)
        if response.status_code != 400:
            failures.append(f"{method} {url}: {response.status_code}")
        if changed(before, snapshot()):
            failures.append(f"{method} {url} changed {changed(before, snapshot())}")
    assert not failures, "\n".join(failures)


def test_with_the_token_the_same_posts_do_change_things(app, world, acme_admin):
    """The control for the CSRF matrix: its form data would be accepted."""
    token = csrf_token(acme_admin, "/admin/policies")
    own = objects_of(world["acme"])
    for endpoint, url in [("admin.policy", "/admin/policies/new"),
                          ("admin.profile", "/admin/profiles/new"),
                          ("admin.new_user", "/admin/people/new"),
                          ("admin.template", "/admin/templates/secure_message"),
                          ("admin.settings", "/admin/settings"),
                          ("admin.toggle_policy", f"/admin/policies/{own['policy_id'][0]}/toggle")]:
        before = snapshot()
        response = send(acme_admin, "POST", endpoint, url, token)
        assert response.status_code in (200, 302), (url, response.status_code)
        assert changed(before, snapshot()), url


# --- tenants: platform administrators only ---------------------------------------------


def test_tenant_pages_are_403_for_an_administrator_who_is_not_a_platform_administrator(
        app, world, acme_admin):
    token = csrf_token(acme_admin, "/admin/policies")
    rules = [r for r in admin_rules(app) if r.rule.startswith("/admin/tenants")]
    assert {r.endpoint for r in rules} >= {"admin.tenants", "admin.new_tenant"}
    for rule in rules:
        for method in methods(rule):
            before = snapshot()
            response = send(acme_admin, method, rule.endpoint, fill(rule, {}), token)
            assert response.status_code == 403, (method, rule.rule)
            assert not changed(before, snapshot()), (method, rule.rule)
    assert db.session.scalar(select(Tenant.id).where(Tenant.slug == "initech")) is None

    admin = db.session.scalars(select(User).where(User.email == "admin@acme.test")).one()
    admin.is_platform_admin = True
    db.session.commit()
    assert acme_admin.get("/admin/tenants").status_code == 200
    assert "Globex" in acme_admin.get("/admin/tenants").get_data(as_text=True)


def test_platform_events_are_for_platform_administrators_only(app, world, acme_admin):
    assert "Platform-wide" not in acme_admin.get("/admin/audit").get_data(as_text=True)
    admin = db.session.scalars(select(User).where(User.email == "admin@acme.test")).one()
    admin.is_platform_admin = True
    db.session.commit()
    page = acme_admin.get("/admin/audit").get_data(as_text=True)
    assert "Platform-wide" in page
    assert "Globex partners (route)" not in page  # another tenant's own log stays its own


# --- message tracking across tenants: the platform administrator's only -----------------


def test_tracking_every_tenant_is_the_platform_administrators_only(app, world, acme_admin):
    """A tenant administrator asking for every tenant still sees only their own; the
    platform administrator sees both, with each message's tenant, and opens either."""
    asked = "/admin/tracking?subject=quarterly&every_tenant=y"
    page = acme_admin.get(asked).get_data(as_text=True)
    assert "Acme quarterly" in page and "Globex quarterly" not in page
    assert 'name="every_tenant"' not in page

    admin = db.session.scalars(select(User).where(User.email == "admin@acme.test")).one()
    admin.is_platform_admin = True
    db.session.commit()
    page = acme_admin.get(asked).get_data(as_text=True)
    assert "Acme quarterly" in page and "Globex quarterly" in page
    assert '<th scope="col">Tenant</th>' in page
    globex_message = db.session.scalars(select(Message).where(
        Message.subject == "Globex quarterly")).one()
    assert acme_admin.get(f"/admin/tracking/{globex_message.public_id}").status_code == 200
    own_only = acme_admin.get("/admin/tracking?subject=quarterly").get_data(as_text=True)
    assert "Globex quarterly" not in own_only


@pytest.mark.parametrize(("query", "found"), [
    ("state=held", {"Acme quarterly", "Acme merger"}),
    ("state=queued", {"Acme quarterly", "Acme invoice"}),
    ("state=bounced", set()),
    ("message_id=nonexistent", set()),
])
def test_tracking_finds_by_recipient_state_and_message_id(app, world, acme_admin, query,
                                                          found):
    page = acme_admin.get(f"/admin/tracking?{query}").get_data(as_text=True)
    subjects = {s for s in ("Acme quarterly", "Acme invoice", "Acme merger") if s in page}
    assert subjects == found


def test_tracking_finds_by_message_id_as_written_in_the_header(app, world, acme_admin):
    message = db.session.scalars(select(Message).where(
        Message.subject == "Acme invoice")).one()
    assert message.message_id_header
    for written in (message.message_id_header, message.message_id_header.strip("<>")):
        page = acme_admin.get("/admin/tracking", query_string={"message_id": written})
        text = page.get_data(as_text=True)
        assert "Acme invoice" in text and "Acme merger" not in text
