"""Reading a configuration file (``ccm config import``) and every problem in it.

The whole file is read and checked before anything is written, and each problem is
named by its line and key (``line 12, tenants[0].users[1].role: expected one of ...``),
so a file is imported whole or not at all. The format is docs/configuration.md's.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import yaml
from sqlalchemy import select

from app import clock
from app.delivery import destinations, mail_templates
from app.domain import passwords, policy_rules, second_factor
from app.extensions import db
from app.mail import addresses
from app.models import ROLES, Domain, Tenant

TENANT_KEYS = {"slug", "name", "portal_name", "domains", "visibility_days",
               "expiry_warning_days", "internal_relay", "internal_relay_trusted", "time_zone",
               "default_language",
               "first_contact", "activation_hours", "second_factor_external",
               "second_factor_internal", "mail_from", "application_settings", "users",
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



def read(text: str) -> dict:
    """The file's document, checked whole; ConfigFileError with every problem if any."""
    data, lines = _parse(text)
    checker = _Checker(lines)
    if not checker.check(data):
        checker.domain_owners(data)
    if checker.problems:
        raise ConfigFileError(checker.problems)
    return data


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
                        select(Tenant.slug).join(Domain).where(Domain.name == name, Domain.verified)
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
        if "portal_name" in tenant:
            self.text((*path, "portal_name"), tenant["portal_name"])
        for key in ("name", "portal_name"):  # notifications show it as their sender
            if isinstance(tenant.get(key), str) and \
                    (problem := addresses.display_name_problem(tenant[key])):
                self.fail((*path, key), problem)
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
        warning = tenant.get("expiry_warning_days", 3)
        if not isinstance(warning, int) or isinstance(warning, bool) or not 0 <= warning <= 365:
            self.fail((*path, "expiry_warning_days"),
                      "expected a whole number of days, 0 (never) to 365")
        for side in ("external", "internal"):
            if tenant.get(f"second_factor_{side}", "optional") not in second_factor.POLICIES:
                self.fail((*path, f"second_factor_{side}"), "expected off, optional or required")
        if "mail_from" in tenant:
            self.sender((*path, "mail_from"), tenant["mail_from"], domains)
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
        zone = tenant.get("time_zone", "UTC")
        if not isinstance(zone, str) or clock.zone_problem(zone):
            self.fail((*path, "time_zone"), "expected an IANA time zone name such as "
                      "Europe/Berlin")
        if not mail_templates.offered(tenant.get("default_language", "en")):
            self.fail((*path, "default_language"), "expected a language code such as de")
        names = self.settings(path, tenant.get("application_settings", []))
        self.users(path, tenant.get("users", []), names)
        self.policies(path, tenant.get("policies", []))
        self.templates(path, tenant.get("templates", {}))

    def sender(self, path, address, domains) -> None:
        """The notification sender address: plain, and at one of the tenant's domains."""
        if not isinstance(address, str):
            self.fail(path, "expected an email address")
        elif problem := addresses.sender_problem(address.strip().lower()):
            self.fail(path, problem)
        elif not isinstance(domains, list) or not addresses.sender_at(
                address.strip().lower(), [d for d in domains if isinstance(d, str)]):
            self.fail(path, "expected an address at one of this tenant's domains")

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
        for key, parts in templates.items():
            here = (*path, key)
            # KIND: the version for every language; KIND.LANGUAGE: for one (secure_message.de)
            kind, _, language = str(key).partition(".")
            if kind not in mail_templates.KINDS or (
                    language and not mail_templates.offered(language)):
                self.fail(here, f"expected one of {', '.join(mail_templates.KINDS)}, "
                          "alone or followed by a language code (secure_message.de)")
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


# --- environment variables -------------------------------------------------------------


def delivery_target(value: str) -> str:
    """``CCM_OUTBOUND``, ``CCM_INTERNAL_RELAY``: ``mx``, ``smtp://host[:port]`` (the relay
    grammar a tenant's internal relay has) or ``maildir:PATH``; ValueError says why not."""
    if value == "mx" or (value.startswith("maildir:") and value.removeprefix("maildir:")):
        return value
    if not value.startswith("smtp://"):
        raise ValueError(f"{value!r} is none of mx, smtp://host:port and maildir:PATH")
    try:
        destinations.parse_relay(value)
    except ValueError as error:
        raise ValueError(f"{value!r}: {error}") from None
    return value


#: the settings whose grammar lives above app/config.py, which reads them with these
SETTING_CHECKS = {"OUTBOUND": delivery_target, "INTERNAL_RELAY": delivery_target}


def base_url_warnings(base_url: str) -> list[str]:
    """What about CCM_BASE_URL makes notifications look like phishing, one line each:
    their links are to it, and a recipient is taught to check its address. Plain http
    and a bare IP address are warned about, except on a loopback host (a trial)."""
    host = urlsplit(base_url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or (address is not None and address.is_loopback):
        return []
    warnings = []
    if base_url.lower().startswith("http://"):
        warnings.append(f"CCM_BASE_URL: {base_url} is plain http: notifications link to it "
                        "and recipients sign in there, so use https://")
    if address is not None:
        warnings.append(f"CCM_BASE_URL: {host} is an IP address: notifications tell recipients "
                        "to check the portal's address, so use a host name of yours")
    return warnings
