"""``ccm config import`` / ``export``: tenants and everything they own, as YAML.

Tenants, domains, application settings, users, policies and notification templates, in
the format of docs/configuration.md. Import creates or updates, and never deletes: what a
file does not mention is left as it is. Importing the same file twice changes nothing.
A file with any error is refused whole, with every error named by its line and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from sqlalchemy import select

from app.delivery import destinations, mail_templates
from app.domain import accounts, passwords, policy_rules
from app.extensions import db
from app.mail import addresses
from app.models import (
    ROLES,
    WHERE,
    ApplicationSettings,
    Domain,
    NotificationTemplate,
    Policy,
    Tenant,
    User,
)

TENANT_KEYS = {"slug", "name", "domains", "visibility_days", "internal_relay",
               "internal_relay_trusted",
               "first_contact", "activation_hours", "application_settings", "users",
               "policies", "templates"}
POLICY_KEYS = {"name", "kind", "enabled", "from", "to", "phrases", "where", "tls", "fallback",
               "visibility_days"}

SETTINGS_KEYS = {"name", "default", "portal_ccm", "send_secure"}
USER_KEYS = {"email", "role", "password", "application_settings", "portal_ccm", "send_secure",
             "disabled"}


class ConfigFileError(ValueError):
    """The file cannot be imported; ``problems`` lists every reason, each with its line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class ImportResult:
    #: (tenant slug, email, password) of each account given a generated password
    generated: list[tuple[str, str, str]] = field(default_factory=list)
    created: int = 0
    updated: int = 0


def import_text(text: str) -> ImportResult:
    """Apply a configuration file; the caller commits (or rolls back on error)."""
    data, lines = _parse(text)
    checker = _Checker(lines)
    if not checker.check(data):
        checker.domain_owners(data)
    if checker.problems:
        raise ConfigFileError(checker.problems)
    result = ImportResult()
    with db.session.no_autoflush:
        for tenant_data in data["tenants"]:
            _apply_tenant(tenant_data, result)
    return result


def export_text() -> str:
    """The whole configuration as YAML, in the form ``import_text`` reads. No passwords."""
    tenants = []
    for tenant in db.session.scalars(select(Tenant).order_by(Tenant.slug)):
        entry: dict = {"slug": tenant.slug, "name": tenant.name,
                       "domains": [d.name for d in tenant.domains],
                       "visibility_days": tenant.visibility_days}
        if tenant.internal_relay:
            entry["internal_relay"] = tenant.internal_relay
            if not tenant.internal_relay_trusted:  # a tenant administrator set it
                entry["internal_relay_trusted"] = False
        if tenant.first_contact != "password":
            entry["first_contact"] = tenant.first_contact
            entry["activation_hours"] = tenant.activation_hours
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
            .order_by(NotificationTemplate.kind)
        )
        entry["templates"] = {t.kind: {"subject": t.subject, "text": t.text, "html": t.html}
                              for t in templates}
        tenants.append(entry)
    return yaml.safe_dump({"tenants": tenants}, sort_keys=False, allow_unicode=True)


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
    if policy.kind == "content":
        entry["phrases"] = list(policy.phrases)
        entry["where"] = list(policy.where)
    if policy.kind == "secure_delivery":
        entry["tls"] = policy.tls
        entry["fallback"] = policy.fallback
    if policy.visibility_days:
        entry["visibility_days"] = policy.visibility_days
    return entry


# --- reading -------------------------------------------------------------------------


def _parse(text: str) -> tuple[dict, dict]:
    """The document, and the line of every key and list item in it, by path."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigFileError([f"{where}not valid YAML ({getattr(error, 'problem', error)})"]) \
            from None
    finally:
        loader.dispose()
    lines: dict = {(): 1}
    if node is not None:
        _record_lines(node, (), lines)
    return data, lines


def _record_lines(node: yaml.Node, path: tuple, lines: dict) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[(*path, key.value)] = key.start_mark.line + 1
            _record_lines(value, (*path, key.value), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _record_lines(item, (*path, index), lines)


def _name(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "the file"


class _Checker:
    """Collects every problem of a file before anything is written."""

    def __init__(self, lines: dict):
        self.lines = lines
        self.problems: list[str] = []

    def fail(self, path: tuple, message: str) -> None:
        line = next(self.lines[p] for p in (path[:n] for n in range(len(path), -1, -1))
                    if p in self.lines)
        self.problems.append(f"line {line}, {_name(path)}: {message}")

    def check(self, data) -> list[str]:
        if not isinstance(data, dict) or not isinstance(data.get("tenants"), list):
            self.fail((), "expected a mapping with a list under 'tenants'")
            return self.problems
        for key in sorted(set(data) - {"tenants"}):
            self.fail((key,), "unknown key (the file has only 'tenants')")
        slugs = set()
        for number, tenant in enumerate(data["tenants"]):
            path = ("tenants", number)
            if self.mapping(path, tenant, TENANT_KEYS, required={"slug", "name"}):
                self.tenant(path, tenant)
                if tenant.get("slug") in slugs:
                    self.fail((*path, "slug"), "this slug appears twice in the file")
                slugs.add(tenant.get("slug"))
        return self.problems

    def domain_owners(self, data: dict) -> None:
        """A domain belongs to one tenant: in the file and in the database."""
        claimed: dict[str, str] = {}
        for number, tenant in enumerate(data["tenants"]):
            for index, name in enumerate(tenant.get("domains", [])):
                path, name = ("tenants", number, "domains", index), name.lower()
                owner = claimed.setdefault(name, tenant["slug"])
                if owner == tenant["slug"]:
                    owner = db.session.scalar(
                        select(Tenant.slug).join(Domain).where(Domain.name == name)
                    ) or owner
                if owner != tenant["slug"]:
                    self.fail(path, f"{name} already belongs to tenant {owner!r}")

    def mapping(self, path, value, allowed: set, required: set) -> bool:
        if not isinstance(value, dict):
            self.fail(path, "expected a mapping")
            return False
        for key in sorted(set(value) - allowed, key=str):
            expected = ", ".join(sorted(allowed))
            self.fail((*path, key), f"unknown key; expected one of {expected}")
        for key in sorted(required - set(value)):
            self.fail(path, f"'{key}' is required")
        return True

    def text(self, path, value, *, pattern: str | None = None, maximum: int = 200) -> None:
        if not isinstance(value, str) or not value.strip():
            self.fail(path, "expected a non-empty text")
        elif len(value) > maximum:
            self.fail(path, f"longer than {maximum} characters")
        elif pattern == "slug" and not (value.isascii() and value.replace("-", "").isalnum()
                                        and value == value.lower()):
            self.fail(path, "use lower-case letters, digits and '-' only")
        elif pattern == "email" and (value.count("@") != 1 or " " in value.strip()):
            self.fail(path, "expected an email address")

    def flag(self, path, value) -> None:
        if not isinstance(value, bool):
            self.fail(path, "expected true or false")

    def tenant(self, path, tenant: dict) -> None:
        self.text((*path, "slug"), tenant.get("slug"), pattern="slug", maximum=63)
        self.text((*path, "name"), tenant.get("name"))
        domains = tenant.get("domains", [])
        if not isinstance(domains, list):
            self.fail((*path, "domains"), "expected a list of domain names")
        else:
            for index, domain in enumerate(domains):
                problem = addresses.domain_problem(domain) if isinstance(domain, str) \
                    else "expected a domain name"
                if problem:
                    self.fail((*path, "domains", index), problem)
        self.days((*path, "visibility_days"), tenant.get("visibility_days", 30))
        if tenant.get("first_contact", "password") not in ("password", "activation_link"):
            self.fail((*path, "first_contact"), "expected password or activation_link")
        hours = tenant.get("activation_hours", 72)
        if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= 720:
            self.fail((*path, "activation_hours"), "expected a whole number of hours, 1 to 720")
        if "internal_relay" in tenant:
            try:
                destinations.parse_relay(str(tenant["internal_relay"]))
            except ValueError as error:
                self.fail((*path, "internal_relay"), f"expected smtp://host:port: {error}")
        if "internal_relay_trusted" in tenant:
            self.flag((*path, "internal_relay_trusted"), tenant["internal_relay_trusted"])
        names = self.settings(path, tenant.get("application_settings", []))
        self.users(path, tenant.get("users", []), names)
        self.policies(path, tenant.get("policies", []))
        self.templates(path, tenant.get("templates", {}))

    def days(self, path, value) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3650:
            self.fail(path, "expected a whole number of days, 1 to 3650")

    def policies(self, path, policies) -> None:
        path = (*path, "policies")
        if not isinstance(policies, list):
            self.fail(path, "expected a list")
            return
        names = set()
        for index, policy in enumerate(policies):
            here = (*path, index)
            if not self.mapping(here, policy, POLICY_KEYS, required={"name", "kind"}):
                continue
            self.text((*here, "name"), policy.get("name"))
            if policy.get("name") in names:
                self.fail((*here, "name"), "this name appears twice")
            names.add(policy.get("name"))
            if "enabled" in policy:
                self.flag((*here, "enabled"), policy["enabled"])
            found = policy_rules.problems(
                policy.get("kind"), from_pattern=policy.get("from"), to_pattern=policy.get("to"),
                phrases=policy.get("phrases"), where=policy.get("where"),
                tls=policy.get("tls"), fallback=policy.get("fallback"),
                visibility_days=policy.get("visibility_days"))
            for key, problem in found.items():
                self.fail((*here, key), problem)

    def templates(self, path, templates) -> None:
        path = (*path, "templates")
        if not isinstance(templates, dict):
            self.fail(path, "expected a mapping of notification kinds")
            return
        for kind, parts in templates.items():
            here = (*path, kind)
            if kind not in mail_templates.KINDS:
                self.fail(here, f"expected one of {', '.join(mail_templates.KINDS)}")
                continue
            if not self.mapping(here, parts, set(mail_templates.PARTS),
                                required=set(mail_templates.PARTS)):
                continue
            if not all(isinstance(parts[p], str) for p in mail_templates.PARTS):
                self.fail(here, "subject, text and html must be texts")
            elif problem := mail_templates.check(kind, parts):
                self.fail(here, problem)

    def settings(self, path, profiles) -> set:
        path = (*path, "application_settings")
        names: set = set()
        if not isinstance(profiles, list):
            self.fail(path, "expected a list")
            return names
        defaults = 0
        for index, profile in enumerate(profiles):
            here = (*path, index)
            if not self.mapping(here, profile, SETTINGS_KEYS, required={"name"}):
                continue
            self.text((*here, "name"), profile.get("name"), maximum=100)
            if profile.get("name") in names:
                self.fail((*here, "name"), "this name appears twice")
            names.add(profile.get("name"))
            for key in ("default", "portal_ccm", "send_secure"):
                if key in profile:
                    self.flag((*here, key), profile[key])
            defaults += profile.get("default") is True
        if defaults > 1:
            self.fail(path, "only one profile may be the default")
        return names

    def users(self, path, users, profile_names: set) -> None:
        path = (*path, "users")
        if not isinstance(users, list):
            self.fail(path, "expected a list")
            return
        seen = set()
        for index, user in enumerate(users):
            here = (*path, index)
            if not self.mapping(here, user, USER_KEYS, required={"email", "role"}):
                continue
            self.text((*here, "email"), user.get("email"), pattern="email", maximum=320)
            email = addresses.normalise(str(user.get("email", "")))
            if email in seen:
                self.fail((*here, "email"), "this address appears twice in this tenant")
            seen.add(email)
            if user.get("role") not in ROLES:
                self.fail((*here, "role"), f"expected one of {', '.join(ROLES)}")
            if "password" in user:
                password = user["password"]
                if not isinstance(password, str):
                    self.fail((*here, "password"), "expected a text")
                else:
                    for problem in passwords.problems(password, email=email):
                        self.fail((*here, "password"), problem)
            profile = user.get("application_settings")
            if profile is not None and profile not in profile_names:
                self.fail((*here, "application_settings"),
                          f"no profile named {profile!r} in this tenant's application_settings")
            for key in ("portal_ccm", "send_secure", "disabled"):
                if key in user:
                    self.flag((*here, key), user[key])


# --- writing -------------------------------------------------------------------------


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
         activation_hours=data.get("activation_hours", 72))

    known = {d.name for d in tenant.domains}
    for name in data.get("domains", []):
        if name.lower() not in known:
            tenant.domains.append(Domain(name=name.lower()))
            result.created += 1

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
        content = entry["kind"] == "content"
        secure = entry["kind"] == "secure_delivery"
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
    for kind, parts in entries.items():
        template = None
        if tenant.id is not None:
            template = db.session.scalar(select(NotificationTemplate).where(
                NotificationTemplate.tenant_id == tenant.id, NotificationTemplate.kind == kind))
        if template is None:
            template = NotificationTemplate(tenant=tenant, kind=kind)
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
    _set(user, result, role=role, kind="external" if role == "external" else "internal",
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

