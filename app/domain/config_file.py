"""``ccm config import`` / ``export``: tenants and everything they own, as YAML.

Tenants, domains, application settings, users, policies and notification templates, in
the format of docs/configuration.md. Import creates or updates, and never deletes: what a
file does not mention is left as it is. Importing the same file twice changes nothing.
A file with any error is refused whole, with every error named by its line and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import yaml
from sqlalchemy import inspect, select

from app.delivery import destinations, mail_templates
from app.domain import accounts, config_checks, domain_proof, passwords
from app.extensions import db
from app.mail import addresses
from app.models import (
    WHERE,
    ApplicationSettings,
    Domain,
    NotificationTemplate,
    Policy,
    PolicyKind,
    Role,
    Side,
    Tenant,
    User,
)


@dataclass
class ImportResult:
    #: (tenant slug, email, password) of each account given a generated password
    generated: list[tuple[str, str, str]] = field(default_factory=list)
    created: int = 0
    updated: int = 0


def import_text(text: str) -> ImportResult:
    """Apply a configuration file; the caller commits (or rolls back on error)."""
    data = config_checks.read(text)
    result = ImportResult()
    with db.session.no_autoflush:
        for tenant_data in data["tenants"]:
            _apply_tenant(tenant_data, result)
    return result


class _Dumper(yaml.SafeDumper):
    """Safe YAML, with a word of app/models/vocabulary.py written as its plain text (an
    object not reloaded since it was given one holds the enum member, not a str)."""


_Dumper.add_multi_representer(StrEnum, lambda dumper, word: dumper.represent_str(str(word)))
def pending_changes() -> list[str]:
    """What an import left in the session, one line a record, before the caller commits
    or (for ``ccm config import --dry-run``) rolls back."""
    lines = [f"create {_label(record)}" for record in db.session.new]
    for record in db.session.dirty:
        state = inspect(record)
        changed = [attribute.key.removesuffix("_hash")
                   for attribute in state.mapper.column_attrs
                   if state.attrs[attribute.key].history.has_changes()]
        if changed:
            lines.append(f"update {_label(record)}: {', '.join(changed)}")
    return sorted(lines)


def _label(record) -> str:
    tenant = getattr(record, "tenant", None)
    of = f" of tenant {tenant.slug}" if tenant is not None else ""
    names = {Tenant: ("tenant", "slug"), Domain: ("domain", "name"), User: ("user", "email"),
             ApplicationSettings: ("application settings", "name"),
             Policy: ("policy", "name"), NotificationTemplate: ("template", "kind")}
    kind, key = names.get(type(record), (type(record).__name__, "id"))
    return f"{kind} {getattr(record, key)}{of}"


def export_text() -> str:
    """The whole configuration as YAML, in the form ``import_text`` reads. No passwords."""
    tenants = []
    for tenant in db.session.scalars(select(Tenant).order_by(Tenant.slug)):
        entry: dict = {"slug": tenant.slug, "name": tenant.name}
        if tenant.portal_name:
            entry["portal_name"] = tenant.portal_name
        entry |= {"domains": tenant.verified_domains, "visibility_days": tenant.visibility_days}
        if tenant.expiry_warning_days != 3:
            entry["expiry_warning_days"] = tenant.expiry_warning_days
        if tenant.internal_relay:
            entry["internal_relay"] = tenant.internal_relay
            if not tenant.internal_relay_trusted:  # a tenant administrator set it
                entry["internal_relay_trusted"] = False
        if tenant.time_zone != "UTC":
            entry["time_zone"] = tenant.time_zone
        if tenant.default_language != "en":
            entry["default_language"] = tenant.default_language
        if tenant.first_contact != "password":
            entry["first_contact"] = tenant.first_contact
            entry["activation_hours"] = tenant.activation_hours
        for side in ("external", "internal"):
            if (required := getattr(tenant, f"second_factor_{side}")) != "optional":
                entry[f"second_factor_{side}"] = required
        # the address only: a pending domain's sender could not be saved, so it is verified
        if tenant.mail_from:
            entry["mail_from"] = tenant.mail_from
        entry["application_settings"] = [
            {"name": s.name, "default": s.is_default, "portal_ccm": s.portal_ccm,
             "send_secure": s.send_secure}
            for s in tenant.application_settings
        ]
        users = db.session.scalars(
            select(User).where(User.tenant_id == tenant.id).order_by(User.email)
        )
        entry["users"] = [_export_user(u) for u in users]
        entry["policies"] = [_export_policy(p) for p in tenant.policies]
        templates = db.session.scalars(
            select(NotificationTemplate).where(NotificationTemplate.tenant_id == tenant.id)
            .order_by(NotificationTemplate.kind, NotificationTemplate.language)
        )
        entry["templates"] = {  # KIND for every language, KIND.LANGUAGE for one
            t.kind + (f".{t.language}" if t.language else ""):
                {"subject": t.subject, "text": t.text, "html": t.html} for t in templates}
        tenants.append(entry)
    return yaml.dump({"tenants": tenants}, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def _export_user(user: User) -> dict:
    entry: dict = {"email": user.email, "role": user.role}
    if user.application_settings:
        entry["application_settings"] = user.application_settings.name
    for name in ("portal_ccm", "send_secure"):
        if (override := getattr(user, f"{name}_override")) is not None:
            entry[name] = override
    if user.disabled:
        entry["disabled"] = True
    return entry


def _export_policy(policy: Policy) -> dict:
    entry: dict = {"name": policy.name, "kind": policy.kind}
    if not policy.enabled:
        entry["enabled"] = False
    if policy.from_pattern:
        entry["from"] = policy.from_pattern
    if policy.to_pattern:
        entry["to"] = policy.to_pattern
    if policy.kind == PolicyKind.CONTENT:
        entry["phrases"] = list(policy.phrases)
        entry["where"] = list(policy.where)
    if policy.kind == PolicyKind.SECURE_DELIVERY:
        entry["tls"] = policy.tls
        entry["fallback"] = policy.fallback
    if policy.visibility_days:
        entry["visibility_days"] = policy.visibility_days
    return entry


# --- reading -------------------------------------------------------------------------


def _set(record, result: ImportResult, **values) -> None:
    """Assign only what differs, so a second import leaves every row untouched."""
    changed = False
    for name, value in values.items():
        if getattr(record, name) != value:
            setattr(record, name, value)
            changed = True
    if changed and record.id is not None:
        result.updated += 1


def _apply_tenant(data: dict, result: ImportResult) -> None:
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == data["slug"]))
    if tenant is None:
        tenant = Tenant(slug=data["slug"])
        db.session.add(tenant)
        result.created += 1
    relay = data.get("internal_relay")
    relay = relay and str(destinations.parse_relay(str(relay)))
    # The operator's file may aim the gateway anywhere, unless it says (as an export
    # does of a relay a tenant administrator set) that the relay is not trusted.
    trusted = relay is not None and data.get("internal_relay_trusted", True)
    _set(tenant, result, name=data["name"], visibility_days=data.get("visibility_days", 30),
         internal_relay=relay, internal_relay_trusted=trusted,
         first_contact=data.get("first_contact", "password"),
         activation_hours=data.get("activation_hours", 72),
         time_zone=data.get("time_zone", "UTC"), portal_name=data.get("portal_name"),
         expiry_warning_days=data.get("expiry_warning_days", 3),
         second_factor_external=data.get("second_factor_external", "optional"),
         second_factor_internal=data.get("second_factor_internal", "optional"),
         mail_from=(data.get("mail_from") or "").strip().lower() or None,
         default_language=data.get("default_language", "en"))

    # The operator's file vouches for its domains: one still pending is verified now.
    known = {d.name: d for d in tenant.domains}
    for name in data.get("domains", []):
        if (domain := known.get(name.lower())) is None:
            tenant.domains.append(Domain(name=name.lower()))
            result.created += 1
        else:
            domain_proof.vouch(domain)

    profiles = {s.name: s for s in tenant.application_settings}
    has_default = any(p.get("default") for p in data.get("application_settings", []))
    for entry in data.get("application_settings", []):
        profile = profiles.get(entry["name"])
        if profile is None:
            profile = profiles[entry["name"]] = ApplicationSettings(name=entry["name"])
            tenant.application_settings.append(profile)
            result.created += 1
        _set(profile, result, portal_ccm=entry.get("portal_ccm", False),
             send_secure=entry.get("send_secure", False))
    if has_default:
        for entry in data["application_settings"]:
            _set(profiles[entry["name"]], result, is_default=bool(entry.get("default")))

    for entry in data.get("users", []):
        _apply_user(tenant, entry, profiles, result)
    _apply_policies(tenant, data.get("policies", []), result)
    _apply_templates(tenant, data.get("templates", {}), result)


def _apply_policies(tenant: Tenant, entries: list, result: ImportResult) -> None:
    """The file's policies, in the file's order, ahead of any it does not mention."""
    existing = {p.name: p for p in tenant.policies}
    listed = [entry["name"] for entry in entries]
    others = [p for p in tenant.policies if p.name not in listed]
    for position, entry in enumerate(entries):
        policy = existing.get(entry["name"])
        if policy is None:
            policy = Policy(name=entry["name"])
            tenant.policies.append(policy)
            result.created += 1
        content = entry["kind"] == PolicyKind.CONTENT
        secure = entry["kind"] == PolicyKind.SECURE_DELIVERY
        _set(policy, result, position=position, kind=entry["kind"],
             enabled=entry.get("enabled", True), from_pattern=entry.get("from"),
             to_pattern=entry.get("to"),
             phrases=list(entry.get("phrases", [])) if content else [],
             where=list(entry.get("where", WHERE)) if content else list(WHERE),
             tls=entry.get("tls") if secure else None,
             fallback=entry.get("fallback") if secure else None,
             visibility_days=entry.get("visibility_days"))
    for position, policy in enumerate(others, start=len(entries)):
        _set(policy, result, position=position)


def _apply_templates(tenant: Tenant, entries: dict, result: ImportResult) -> None:
    for key, parts in entries.items():
        kind, _, language = key.partition(".")
        template = None
        if tenant.id is not None:
            template = mail_templates.own(kind, tenant, language or None)
        if template is None:
            template = NotificationTemplate(tenant=tenant, kind=kind, language=language or None)
            db.session.add(template)
            result.created += 1
        _set(template, result, subject=parts["subject"], text=parts["text"],
             html=parts["html"])


def _apply_user(tenant: Tenant, data: dict, profiles: dict, result: ImportResult) -> None:
    email = addresses.normalise(data["email"])
    user = None
    if tenant.id is not None:
        user = db.session.scalar(
            select(User).where(User.tenant_id == tenant.id, User.email == email)
        )
    if user is None:
        user = User(tenant=tenant, email=email, failed_signins=0, disabled=False)
        db.session.add(user)
        result.created += 1
    role = data["role"]
    _set(user, result, role=role, kind=Side.EXTERNAL if role == Role.EXTERNAL else Side.INTERNAL,
         application_settings=profiles.get(data.get("application_settings")),
         portal_ccm_override=data.get("portal_ccm"),
         send_secure_override=data.get("send_secure"),
         disabled=bool(data.get("disabled", False)))
    password = data.get("password")
    if password is not None:
        if not passwords.verify_password(user.password_hash, password):
            user.password_hash = accounts.hash_for(user, password)
            user.must_change_password = False
            if user.id is not None:
                result.updated += 1
    elif user.password_hash is None:
        generated = passwords.generate()
        user.password_hash = accounts.hash_for(user, generated)
        user.must_change_password = True
        result.generated.append((tenant.slug, email, generated))

