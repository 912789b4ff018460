"""Domain proof: a domain a tenant administrator adds waits for a DNS TXT record, checked
against a real DNS server on loopback (tests/servers.py)."""

from __future__ import annotations

import socket

import pytest
from servers import LOOPBACK, DnsServer
from sqlalchemy.exc import IntegrityError
from support import post_form

from app.domain import domain_proof
from app.extensions import db
from app.models import AuditEvent, Domain, Tenant, User

FORM = {"name": "Acme Corp", "portal_name": "", "domains": "acme.test", "internal_relay": "",
        "visibility_days": "30", "expiry_warning_days": "3", "first_contact": "password",
        "activation_hours": "72", "second_factor_external": "optional",
        "second_factor_internal": "optional", "mail_from": ""}


@pytest.fixture
def dns_server(app):
    with DnsServer() as server:
        app.config["DNS_SERVERS"] = server.address
        yield server


def save(client, **changes):
    return post_form(client, "/admin/settings", {**FORM, **changes})


def domain(name: str, tenant: Tenant) -> Domain:
    db.session.expire_all()
    return db.session.scalar(db.select(Domain).filter_by(name=name, tenant_id=tenant.id))


def actions() -> list[str]:
    return [f"{e.action}: {e.detail}" for e in db.session.scalars(
        db.select(AuditEvent).order_by(AuditEvent.id))]


def test_a_domain_the_tenant_administrator_adds_is_pending_with_its_record_shown(
        as_admin, acme):
    response = save(as_admin, domains="acme.test\npaypal.com")
    added = domain("paypal.com", acme)
    assert not added.verified and len(added.proof_token) >= 32
    assert not acme.is_internal("security@paypal.com")
    page = as_admin.get("/admin/settings").get_data(as_text=True)
    assert response.status_code == 302
    assert "_ccm-challenge.paypal.com" in page
    assert f"ccm-verification={added.proof_token}" in page and "Check now" in page
    assert any(a.startswith("domain added, waiting for its DNS proof: paypal.com")
               for a in actions())


def test_a_pending_domain_cannot_be_the_notification_sender(as_admin, acme):
    save(as_admin, domains="acme.test\npaypal.com")
    response = save(as_admin, domains="acme.test\npaypal.com", mail_from="security@paypal.com")
    assert "paypal.com is not verified yet. Publish the TXT record" in \
        response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Tenant, acme.id).mail_from is None
    # nor in the same save that adds it
    response = save(as_admin, domains="acme.test\nevil.test", mail_from="x@evil.test")
    assert "evil.test is not verified yet" in response.get_data(as_text=True)


def test_the_record_proves_the_domain_through_check_now(as_admin, acme, dns_server):
    save(as_admin, domains="acme.test\nbank.test")
    pending = domain("bank.test", acme)
    dns_server.add_txt("_ccm-challenge.bank.test", "v=spf1 -all")
    dns_server.add_txt("_ccm-challenge.bank.test", f"ccm-verification={pending.proof_token}")
    response = post_form(as_admin, f"/admin/settings/domains/{pending.id}/check", {},
                         form_path="/admin/settings", follow_redirects=True)
    assert "bank.test is verified." in response.get_data(as_text=True)
    proven = domain("bank.test", acme)
    assert proven.verified and proven.verified_at and proven.proof_token is None
    assert "domain verified: bank.test: bank.test is verified." in actions()
    # now it may be the sender's domain
    assert save(as_admin, domains="acme.test\nbank.test",
                mail_from="notices@bank.test").status_code == 302


def test_check_now_needs_the_csrf_token(as_admin, acme, dns_server):
    save(as_admin, domains="acme.test\nbank.test")
    pending = domain("bank.test", acme)
    dns_server.add_txt("_ccm-challenge.bank.test", f"ccm-verification={pending.proof_token}")
    assert as_admin.post(f"/admin/settings/domains/{pending.id}/check").status_code == 400
    assert not domain("bank.test", acme).verified


def pending_at(make_tenant, name="bank.test") -> Domain:
    tenant = make_tenant("globex", domains=["globex.test"])
    added = domain_proof.pending(name)
    tenant.domains.append(added)
    db.session.commit()
    return added


@pytest.mark.parametrize(("publish", "expected"), [
    (None, "No TXT record ccm-verification="),
    ("ccm-verification=not-the-token", "(found ccm-verification=not-the-token, not this"),
    ("", "No TXT record"),  # the name exists, with no TXT record
])
def test_no_record_or_a_wrong_token_proves_nothing(make_tenant, dns_server, publish,
                                                   expected):
    added = pending_at(make_tenant)
    if publish == "":
        dns_server.add_a("_ccm-challenge.bank.test", "192.0.2.1")
    elif publish:
        dns_server.add_txt("_ccm-challenge.bank.test", publish)
    outcome = domain_proof.check(added, dns_server.address)
    assert not outcome.proven and expected in outcome.message
    assert not added.verified and added.proof_token


def test_the_record_may_sit_behind_a_cname(make_tenant, dns_server):
    added = pending_at(make_tenant)
    dns_server.add_cname("_ccm-challenge.bank.test", "proofs.dns-host.test")
    dns_server.add_txt("proofs.dns-host.test", domain_proof.record_value(added))
    assert domain_proof.check(added, dns_server.address).proven
    assert added.verified


def test_servfail_changes_nothing_and_says_so(make_tenant, dns_server):
    added = pending_at(make_tenant)
    dns_server.add_txt("_ccm-challenge.bank.test", domain_proof.record_value(added))
    dns_server.fail("_ccm-challenge.bank.test")
    outcome = domain_proof.check(added, dns_server.address)
    assert not outcome.proven
    assert "DNS could not answer for _ccm-challenge.bank.test" in outcome.message
    assert "Nothing changed" in outcome.message and not added.verified


def test_a_dns_server_that_never_answers_times_out_clearly(make_tenant):
    added = pending_at(make_tenant)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((LOOPBACK, 0))
        outcome = domain_proof.check(added, f"{LOOPBACK}:{silent.getsockname()[1]}",
                                     timeout=0.5)
    assert not outcome.proven
    assert "DNS did not answer for _ccm-challenge.bank.test in time" in outcome.message
    assert not added.verified


def test_two_tenants_race_for_one_domain_and_the_first_to_prove_it_wins(
        as_admin, acme, make_tenant, dns_server):
    # globex waits on bank.test; acme may still add it: a pending claim blocks no one
    theirs = pending_at(make_tenant)
    assert save(as_admin, domains="acme.test\nbank.test").status_code == 302
    ours = domain("bank.test", acme)
    dns_server.add_txt("_ccm-challenge.bank.test", domain_proof.record_value(ours))
    dns_server.add_txt("_ccm-challenge.bank.test", domain_proof.record_value(theirs))
    assert domain_proof.check(ours, dns_server.address).proven
    db.session.commit()
    theirs = db.session.get(Domain, theirs.id)
    outcome = domain_proof.check(theirs, dns_server.address)
    assert not outcome.proven and "verified by another organisation" in outcome.message
    assert not theirs.verified
    # a verified claim blocks others from adding it at all
    globex = db.session.get(Tenant, theirs.tenant_id)
    assert domain_proof.verified_elsewhere(["bank.test"], globex) == ["bank.test"]


def test_the_database_holds_one_verified_claim_per_name(make_tenant):
    make_tenant("globex", domains=["bank.test"])
    with pytest.raises(IntegrityError):
        make_tenant("initech", domains=["bank.test"])
    db.session.rollback()


def test_the_platform_administrators_domains_count_as_verified(make_tenant):
    tenant = make_tenant("globex", domains=["globex.test"])
    assert db.session.get(Tenant, tenant.id).domains[0].verified


def test_two_proofs_at_the_same_moment_leave_one_owner(make_tenant, dns_server,
                                                       monkeypatch):
    theirs = pending_at(make_tenant)
    initech = make_tenant("initech", domains=["initech.test"])
    ours = domain_proof.pending("bank.test")
    initech.domains.append(ours)
    db.session.commit()
    for each in (ours, theirs):
        dns_server.add_txt("_ccm-challenge.bank.test", domain_proof.record_value(each))
    assert domain_proof.check(ours, dns_server.address).proven
    db.session.commit()
    # both looked before either saved: the database keeps the second out
    monkeypatch.setattr(domain_proof, "verified_elsewhere", lambda names, tenant: [])
    outcome = domain_proof.check(theirs, dns_server.address)
    assert not outcome.proven and "just been verified by another" in outcome.message
    db.session.commit()
    db.session.expire_all()
    assert not db.session.get(Domain, theirs.id).verified
    assert db.session.get(Domain, ours.id).verified


@pytest.mark.parametrize("app", [{"RATELIMIT_ENABLED": True}], indirect=True)
def test_check_now_is_rate_limited(as_admin, acme, dns_server):
    save(as_admin, domains="acme.test\nbank.test")
    pending = domain("bank.test", acme)
    codes = [post_form(as_admin, f"/admin/settings/domains/{pending.id}/check", {},
                       form_path="/admin/settings").status_code for _ in range(11)]
    assert codes == [302] * 10 + [429]
    assert len([a for a in actions() if a.startswith("domain check failed")]) == 10


def test_the_platform_administrator_vouches_for_what_they_save(as_admin, acme):
    save(as_admin, domains="acme.test\nbank.test")
    assert "internal domains: acme.test → acme.test, bank.test (pending DNS proof)" in actions()[-2]
    admin = db.session.scalar(db.select(User).filter_by(email="admin@acme.test"))
    admin.is_platform_admin = True
    db.session.commit()
    save(as_admin, domains="acme.test\nbank.test\nbank2.test")
    assert domain("bank.test", acme).verified and domain("bank2.test", acme).verified


def test_the_worker_finds_the_record_without_check_now(app, make_tenant, dns_server,
                                                       frozen_clock):
    """The ``prove`` job looks every hour for a week after a domain was added; what it
    proves is audited as the worker's doing, and a domain the DNS does not show yet is
    looked for again only after the hour."""
    from datetime import timedelta

    from app import worker

    added = pending_at(make_tenant)
    assert worker.run_job(app, "prove") == "0"
    db.session.expire_all()
    assert db.session.get(Domain, added.id).checked_at == frozen_clock.now
    dns_server.add_txt("_ccm-challenge.bank.test", domain_proof.record_value(added))
    frozen_clock.advance(timedelta(minutes=59))
    assert domain_proof.check_pending(dns_server.address) == 0  # checked within the hour
    frozen_clock.advance(timedelta(minutes=2))
    assert domain_proof.check_pending(dns_server.address) == 1
    db.session.expire_all()
    assert db.session.get(Domain, added.id).verified
    assert actions()[-1] == ("domain verified: bank.test: bank.test is verified. "
                             "(checked by the worker)")
    assert db.session.scalars(db.select(AuditEvent.actor)).all()[-1] == "ccm worker"


def test_after_a_week_only_check_now_looks(make_tenant, dns_server, frozen_clock):
    from datetime import timedelta

    added = pending_at(make_tenant)
    dns_server.add_txt("_ccm-challenge.bank.test", domain_proof.record_value(added))
    frozen_clock.advance(domain_proof.AUTO_CHECK + timedelta(minutes=1))
    assert domain_proof.check_pending(dns_server.address) == 0
    assert not db.session.get(Domain, added.id).verified
    assert domain_proof.check(added, dns_server.address).proven  # "Check now" still works


def test_the_worker_checks_the_least_recently_checked_first_a_batch_at_a_time(
        make_tenant, dns_server, frozen_clock, monkeypatch):
    from datetime import timedelta

    tenant = make_tenant("globex", domains=["globex.test"])
    names = [f"d{n}.test" for n in range(5)]
    tenant.domains.extend(domain_proof.pending(name) for name in names)
    db.session.commit()
    monkeypatch.setattr(domain_proof, "AUTO_CHECK_BATCH", 2)
    looked = []
    real_check = domain_proof.check
    monkeypatch.setattr(domain_proof, "check", lambda domain, servers, **kw: (
        looked.append(domain.name), real_check(domain, servers, **kw))[1])
    for _ in range(3):
        domain_proof.check_pending(dns_server.address)
        frozen_clock.advance(timedelta(minutes=1))
    assert looked == names  # each once within the hour
    frozen_clock.advance(domain_proof.AUTO_CHECK_EVERY)
    domain_proof.check_pending(dns_server.address)
    assert looked == names + names[:2]


@pytest.mark.parametrize("by", ["worker", "check now"])
def test_no_write_waits_on_dns(app, make_tenant, monkeypatch, by, as_admin, acme):
    """While DNS is asked, the check holds no write: on SQLite that would be the one
    write lock of the whole gateway (intake, deliveries, every tenant's pages)."""
    import sqlite3

    from app.delivery import destinations

    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single write lock")
    added = domain_proof.pending("slow.test")
    acme.domains.append(added)
    db.session.commit()
    other = make_tenant("globex", domains=["globex.test"])
    seen = []

    def lookup(name, servers, *, timeout):
        writer = sqlite3.connect(db.engine.url.database, timeout=0.2)
        try:
            writer.execute("UPDATE tenant SET name = name WHERE id = ?", (other.id,))
            writer.commit()
            seen.append("wrote")
        except sqlite3.OperationalError as error:
            seen.append(f"blocked: {error}")
        finally:
            writer.close()
        return []

    monkeypatch.setattr(destinations, "txt_records", lookup)
    if by == "worker":
        domain_proof.check_pending("")
    else:
        post_form(as_admin, f"/admin/settings/domains/{added.id}/check", {},
                  form_path="/admin/settings")
    assert seen == ["wrote"]
    assert domain(added.name, acme).checked_at is not None
