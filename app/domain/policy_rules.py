"""What makes a policy valid: one set of rules for the admin pages and ``ccm config import``."""

from __future__ import annotations

from app.models import FALLBACKS, POLICY_KINDS, TLS_LEVELS, WHERE, PolicyKind, Side
from app.words import N_, Words

PATTERN_HELP = Words(N_("expected an address, *@domain, internal, external or *"))


def pattern_ok(value) -> bool:
    if not isinstance(value, str) or not value.strip():
        return False
    value = value.strip().lower()
    return value in ("*", *Side) or value.count("@") == 1


def problems(kind, *, from_pattern=None, to_pattern=None, phrases=None, where=None,
             tls=None, fallback=None, visibility_days=None) -> dict[str, str]:
    """Each field that is wrong, with why; empty when the policy is valid."""
    found: dict[str, str] = {}
    if kind not in POLICY_KINDS:
        found["kind"] = Words(N_("expected one of %(kinds)s"), kinds=", ".join(POLICY_KINDS))
        return found
    for name, value in (("from", from_pattern), ("to", to_pattern)):
        if value not in (None, "") and not pattern_ok(value):
            found[name] = PATTERN_HELP
    if visibility_days is not None and (
            not isinstance(visibility_days, int) or isinstance(visibility_days, bool)
            or not 1 <= visibility_days <= 3650):
        found["visibility_days"] = Words(N_("expected a whole number of days, 1 to 3650"))
    if kind == PolicyKind.CONTENT:
        if not isinstance(phrases, list) or not phrases or not all(
                isinstance(p, str) and p.strip() for p in phrases):
            found["phrases"] = Words(N_("expected a list of words or phrases"))
        if where is not None and (not isinstance(where, list) or not where
                                  or not set(where) <= set(WHERE)):
            found["where"] = Words(N_("expected a list of subject and/or body"))
    elif phrases or where:
        name = "phrases" if phrases else "where"
        found[name] = Words(N_("a %(kind)s policy has no %(name)s"), kind=kind, name=name)
    if kind == PolicyKind.SECURE_DELIVERY:
        if tls not in TLS_LEVELS:
            found["tls"] = Words(N_("expected encrypt or verify"))
        if fallback not in FALLBACKS:
            found["fallback"] = Words(N_("expected ccm or bounce"))
    elif tls or fallback:
        name = "tls" if tls else "fallback"
        found[name] = Words(N_("a %(kind)s policy has no %(name)s"), kind=kind, name=name)
    return found
