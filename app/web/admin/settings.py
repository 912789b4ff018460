"""Tenant settings: domains, relay, visibility window, first contact, branding."""

from __future__ import annotations

import hashlib

from flask import abort, current_app, flash, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app import config
from app.delivery import destinations, dkim_signing, mail_templates
from app.domain import audit, domain_proof
from app.extensions import db, limiter
from app.mail import addresses
from app.models import Domain
from app.web.admin import bp
from app.web.admin.forms import ActionForm, SettingsForm
from app.web.languages import say
from app.web.rendering import page, redirect_to
from app.words import N_, Words

LOGO_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
LOGO_BYTES = 200 * 1024


def logo_type(data: bytes) -> str | None:
    """The image type by its first bytes, never by what the browser claimed."""
    return next((kind for magic, kind in LOGO_TYPES.items() if data.startswith(magic)), None)


def domains_problem(tenant, names: list[str]) -> Words | None:
    """Why ``names`` cannot be ``tenant``'s internal domains (in English: the page says it
    in its language); None when they can."""
    if not names:
        return Words(N_("Give at least one internal domain."))
    for name in names:
        if problem := addresses.domain_problem(name):
            return problem
    # A domain another tenant only waits on is no claim: the first to prove it wins.
    if taken := domain_proof.verified_elsewhere(names, tenant):
        return Words(N_("Already the domain of another organisation: %(domains)s"),
                     domains=", ".join(taken))
    return None


def relay_problem(tenant, relay: str | None, *, by_platform_admin: bool) -> str | None:
    """Why the internal relay may not be set to ``relay`` (canonical, or None for the
    gateway's default) by this administrator; None if it may.

    The platform administrator may set any relay. A tenant administrator may set one
    only where the transport lets tenant administrators aim the gateway; keeping the
    relay the platform administrator set is not setting one.
    """
    if relay is None or by_platform_admin or \
            (relay == tenant.internal_relay and tenant.internal_relay_trusted):
        return None
    return say(destinations.relay_refusal(destinations.parse_relay(relay),
                                       destinations.Options.from_config(current_app.config)))


def set_relay(tenant, relay: str | None, *, by_platform_admin: bool) -> None:
    """Store the relay, trusted if the platform administrator set it (or kept it: they
    vouch for what they save)."""
    trusted = relay is not None and by_platform_admin
    if relay == tenant.internal_relay and \
            (not by_platform_admin or trusted == tenant.internal_relay_trusted):
        return
    tenant.internal_relay, tenant.internal_relay_trusted = relay, trusted


def sender_problem(address: str, names: list[str], pending: list[str] = ()) -> str | None:
    """Why ``address`` cannot be the tenant's notification sender address, given the
    tenant's verified domains ``names`` and those still ``pending`` proof; None when it
    can."""
    example = f"notifications@{names[0]}" if names else "notifications@example.com"
    if problem := addresses.sender_problem(address):
        return _("%(problem)s Use one such as %(example)s.", problem=say(problem), example=example)
    if addresses.sender_at(address, pending) and not addresses.sender_at(address, names):
        # Anyone can type paypal.com: it is ours to send from only once DNS says so.
        return _("%(domain)s is not verified yet. Publish the TXT record shown under Domain "
                 "verification and choose Check now, then set this address.",
                 domain=addresses.domain_of(address))
    if not addresses.sender_at(address, names):
        # Notifications must not claim to come from another organisation.
        return _("%(address)s is not at one of your domains (%(domains)s). Use an address such "
                 "as %(example)s, or leave this empty for the gateway's own.",
                 address=address, domains=", ".join(names), example=example)
    return None


#: what the audit log names when it changes, in the form's order: (label, how it is read)
AUDITED = {
    "organisation name": lambda t: t.name,
    "portal name": lambda t: t.portal_name,
    "internal domains": lambda t: ", ".join(sorted(
        d.name + ("" if d.verified else " (pending DNS proof)") for d in t.domains)),
    "internal relay": lambda t: t.internal_relay and (
        config.shown("INTERNAL_RELAY", t.internal_relay)  # a password in it is masked
        + (", set by the platform administrator" if t.internal_relay_trusted else "")),
    "visibility window (days)": lambda t: t.visibility_days,
    "expiry warning (days)": lambda t: t.expiry_warning_days,
    "first contact": lambda t: t.first_contact,
    "activation link (hours)": lambda t: t.activation_hours,
    "second factor, external": lambda t: t.second_factor_external,
    "second factor, internal": lambda t: t.second_factor_internal,
    "notification sender address": lambda t: t.mail_from,
    "time zone": lambda t: t.time_zone,
    "language of notifications": lambda t: t.default_language,
    # the image itself is no text to log: its type, size and the start of its SHA-256
    "logo": lambda t: t.logo_type and (f"{t.logo_type}, {len(t.logo or b''):,} bytes, "
                                       f"sha256 {hashlib.sha256(t.logo or b'').hexdigest()[:12]}"),
}


def snapshot(tenant) -> dict[str, str]:
    """The audited settings of ``tenant`` as the audit log shows them."""
    return {label: "none" if (value := read(tenant)) in (None, "") else str(value)
            for label, read in AUDITED.items()}


def changes(before: dict[str, str], after: dict[str, str]) -> str:
    """Every setting that differs, ``label: old → new``; "no changes" when none does."""
    changed = [f"{label}: {before[label]} → {after[label]}"
               for label in after if before[label] != after[label]]
    return "; ".join(changed) or "no changes"


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    """The tenant's own settings."""
    tenant = current_user.tenant
    form = SettingsForm(obj=tenant)
    if not form.is_submitted():
        form.domains.data = "\n".join(d.name for d in tenant.domains)
    if form.validate_on_submit():
        names = list(dict.fromkeys(n.strip().lower() for n in form.domains.data.splitlines()
                                   if n.strip()))
        logo = form.logo.data.read() if form.logo.data else b""
        relay = (form.internal_relay.data or "").strip() or None
        relay = relay and str(destinations.parse_relay(relay))  # the form checked its syntax
        by_platform_admin = current_user.is_platform_admin
        sender = (form.mail_from.data or "").strip().lower()
        verified = set(tenant.verified_domains)
        if problem := domains_problem(tenant, names):
            form.domains.errors = [*form.domains.errors, say(problem)]
        elif problem := relay_problem(tenant, relay, by_platform_admin=by_platform_admin):
            form.internal_relay.errors = [*form.internal_relay.errors, problem]
        elif sender and (problem := sender_problem(
                sender, [n for n in names if n in verified or by_platform_admin],
                [n for n in names if n not in verified and not by_platform_admin])):
            form.mail_from.errors = [*form.mail_from.errors, problem]
        elif logo and (len(logo) > LOGO_BYTES or not logo_type(logo)):
            form.logo.errors = [*form.logo.errors, _("Use a PNG or JPEG file of 200 KB or less.")]
        else:
            before = snapshot(tenant)
            tenant.name = form.name.data.strip()
            tenant.portal_name = (form.portal_name.data or "").strip() or None
            set_relay(tenant, relay, by_platform_admin=by_platform_admin)
            tenant.visibility_days = form.visibility_days.data
            tenant.expiry_warning_days = form.expiry_warning_days.data or 0
            tenant.first_contact = form.first_contact.data
            tenant.activation_hours = form.activation_hours.data
            tenant.second_factor_external = form.second_factor_external.data
            tenant.second_factor_internal = form.second_factor_internal.data
            tenant.mail_from = sender or None
            dkim_signing.follow_sender(tenant, mail_templates.sender_domain(tenant))
            tenant.time_zone = form.time_zone.data.strip()
            tenant.default_language = form.default_language.data
            kept = {d.name for d in tenant.domains}
            added = [n for n in names if n not in kept]
            tenant.domains = [d for d in tenant.domains if d.name in names] + [
                # the platform administrator is trusted; a tenant administrator proves it
                Domain(name=n) if by_platform_admin else domain_proof.pending(n)
                for n in added]
            if by_platform_admin:  # they vouch for what they save, as an import does
                for domain in tenant.domains:
                    domain_proof.vouch(domain)
            if logo:
                tenant.logo, tenant.logo_type = logo, logo_type(logo)
            audit.record("settings saved", changes(before, snapshot(tenant)), tenant=tenant)
            for domain in tenant.domains:
                if domain.name in added and not domain.verified:
                    audit.record("domain added, waiting for its DNS proof",
                                 f"{domain.name}: TXT {domain_proof.record_value(domain)} "
                                 f"at {domain_proof.record_name(domain)}", tenant=tenant)
            db.session.commit()
            flash(_("Settings saved."), "success")
            return redirect_to(url_for("admin.settings"))
    sender = mail_templates.sender_address(tenant)
    domain = addresses.domain_of(sender)
    return page("admin/settings.html", "admin/_settings.html", form=form, tenant=tenant,
                sender=f"{mail_templates.sender_name(tenant)} <{sender}>", sender_domain=domain,
                signed=tenant.is_internal(sender), dkim=dkim_signing.dns_record(tenant, domain),
                dkim_waiting=dkim_signing.dns_record(tenant, domain, waiting=True),
                action=ActionForm(), pending=[d for d in tenant.domains if not d.verified],
                proof=domain_proof)


@bp.route("/settings/domains/<int:domain_id>/check", methods=["POST"])
@limiter.limit("10/minute")
def check_domain(domain_id: int):
    """Look for a pending domain's TXT record in DNS now."""
    tenant = current_user.tenant
    domain = next((d for d in tenant.domains if d.id == domain_id), None)
    if domain is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        return redirect_to(url_for("admin.settings"))
    outcome = domain_proof.check(domain, current_app.config["DNS_SERVERS"])
    audit.record("domain verified" if outcome.proven else "domain check failed",
                 f"{domain.name}: {outcome.message}", tenant=tenant)
    db.session.commit()
    flash(say(outcome.message), "success" if outcome.proven else "error")
    return redirect_to(url_for("admin.settings"))


@bp.route("/settings/dkim", methods=["POST"])
def dkim_key():
    """Generate a new DKIM key for the tenant's notifications: it waits for its record."""
    tenant = current_user.tenant
    if not ActionForm().validate_on_submit():
        return redirect_to(url_for("admin.settings"))
    dkim_signing.generate(tenant)
    audit.record("DKIM key generated", f"selector {tenant.dkim_next_selector}, waiting for "
                 "its DNS record", tenant=tenant)
    db.session.commit()
    flash(_("A new DKIM key is ready. Publish the DNS record below: CCM starts signing with "
            "it once it sees the record (choose Check DNS now, or wait for the hourly "
            "check)."), "success")
    return redirect_to(url_for("admin.settings"))


@bp.route("/settings/dkim/check", methods=["POST"])
@limiter.limit("10/minute")
def check_dkim_key():
    """Look for the waiting DKIM key's record in DNS now; sign with it once there."""
    tenant = current_user.tenant
    if not ActionForm().validate_on_submit():
        return redirect_to(url_for("admin.settings"))
    domain = mail_templates.sender_domain(tenant)
    if not tenant.is_internal(f"x@{domain}"):  # the key would sign for no domain of its own
        flash(_("Set a notification sender address at one of your domains, then generate a "
                "key."), "error")
        return redirect_to(url_for("admin.settings"))
    outcome = dkim_signing.check_published(tenant, domain, current_app.config["DNS_SERVERS"])
    audit.record("DKIM key published" if outcome.published else "DKIM record check failed",
                 outcome.message, tenant=tenant)
    db.session.commit()
    flash(say(outcome.message), "success" if outcome.published else "error")
    return redirect_to(url_for("admin.settings"))
