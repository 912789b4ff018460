"""Passkeys (WebAuthn): registering one, signing in with one, and the tenant's policy.

The relying party is the portal's host, read from CCM_BASE_URL, and the browser's origin
must be the portal's own. Every tenant's portal shares that host, so a credential is bound
to its tenant here: one from another tenant's account is refused on this tenant's page.
A passkey is a possession and (user verification is required) a fingerprint, face or PIN
at once, so signing in with one needs no password and no separate second factor.

Each ceremony's challenge is kept by the caller (the web session) as the ``state`` these
functions hand out, with the moment it stops being good. Callers commit.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from app import clock
from app.config import settings
from app.domain import accounts, second_factor
from app.extensions import db
from app.models import Passkey, PasswordReset, Side, SpentChallenge, Tenant, User
from app.words import N_, Words

#: a tenant's policy for each side: no passkeys, passkeys as a choice, or passkeys only
OFF, ALLOWED, REQUIRED = "off", "allowed", "required"
POLICIES = (OFF, ALLOWED, REQUIRED)
#: how long the browser has to answer a challenge
CEREMONY_SECONDS = 300
#: the longest name a passkey may have
NAME_LENGTH = 64

#: why a passkey is refused, in English; the pages say them in the reader's language
TOO_LATE = Words(N_("That took too long. Try again."))
NOT_VERIFIED = Words(N_("Your browser's answer could not be verified. Try again, and confirm "
                        "with your fingerprint, face or PIN when asked."))
UNKNOWN = Words(N_("This passkey is not known here: it may have been removed. Sign in with "
                   "your password."))
OTHER_TENANT = Words(N_("This passkey belongs to another organisation's portal. Sign in "
                        "there, or choose another passkey."))
TURNED_OFF = Words(N_("Your organisation has turned passkeys off for your account."))
CLONED = Words(N_("This passkey was refused: its use counter went backwards, so it may have "
                  "been copied. Sign in with your password and tell your organisation."))
ALREADY_REGISTERED = Words(N_("This passkey is already registered."))
NO_NAME = Words(N_("Give the passkey a name."))
LONG_NAME = Words(N_("Use at most %(most)s characters for its name."), most=NAME_LENGTH)


class PasskeyRefused(ValueError):
    """A passkey ceremony failed; ``reason`` says why, in words for its owner."""

    def __init__(self, reason: Words):
        super().__init__(reason)
        self.reason = reason


# --- policy ---------------------------------------------------------------------------


def policy_for(user: User) -> str:
    """What the user's tenant says of passkeys for their side: off, allowed or required."""
    return _policy(user.tenant, user.kind)


def _policy(tenant: Tenant, side: str) -> str:
    return tenant.passkeys_internal if side == Side.INTERNAL else tenant.passkeys_external


def offered_at(tenant: Tenant | None) -> bool:
    """Whether a sign-in page (a tenant's, or the portal's own) offers passkeys."""
    return tenant is None or (tenant.passkeys_internal, tenant.passkeys_external) != (OFF, OFF)


def passwordless(user: User) -> bool:
    """An account begun by passkey (:func:`begin_without_password`): no password, and
    none to wait for; a passkey is its only way in (a reset link gives it a password)."""
    return user.password_hash is None and not user.must_change_password


def must_enrol(user: User) -> bool:
    """The tenant requires a passkey, or the account has no password, and this person has
    no passkey yet."""
    policy = policy_for(user)
    return (policy == REQUIRED or (policy != OFF and passwordless(user))) and not user.passkeys


def password_alone_refused(user: User) -> bool:
    """Whether a password without anything more no longer opens this account: the tenant
    requires passkeys and the person has one. A second factor still goes with a
    password (its recovery codes are the way back for someone who lost their passkey)."""
    return policy_for(user) == REQUIRED and bool(user.passkeys) \
        and not second_factor.enrolled(user)


def stands_in_for_second_factor(user: User) -> bool:
    """Where passkeys are required, the person's passkey is their second factor: they
    are not also asked to set up an authenticator app."""
    return (policy_for(user) == REQUIRED or passwordless(user)) and bool(user.passkeys)


# --- first contact without a password ---------------------------------------------------


def first_contact_by_passkey(reset: PasswordReset) -> bool:
    """Whether this activation link leads to creating a passkey rather than a password:
    the tenant chose it, and passkeys are not off for the person's side."""
    user = reset.user
    return reset.purpose == "activation" and activation_by_passkey(user.tenant, user.kind) \
        and user.password_hash is None


def activation_by_passkey(tenant: Tenant, side: str) -> bool:
    """Whether an activation link for someone on ``side`` at ``tenant`` leads to creating
    a passkey: what its notification speaks of, and its editor's preview shows."""
    return tenant.passkey_first_contact and _policy(tenant, side) != OFF


def begin_without_password(reset: PasswordReset) -> User:
    """Use up the activation link (and any other of the person's) and leave the account
    with no password to set: the caller signs them in, and they add a passkey at once.
    Opening the link (GET) used nothing; this is the explicit step after it."""
    user = reset.user
    accounts.use_up_links(user)
    user.must_change_password = False
    accounts.clear_failures(user)
    return user


# --- the relying party ----------------------------------------------------------------


def relying_party() -> tuple[str, str]:
    """The relying party id (the portal's host name) and the origin the browser must show."""
    parts = urlsplit(settings().base_url)
    host = parts.hostname or "localhost"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return host, f"{parts.scheme}://{host}{port}"


def _state(challenge: bytes, **more: str) -> dict:
    return {"challenge": bytes_to_base64url(challenge),
            "until": time.time() + CEREMONY_SECONDS, **more}


def _challenge(state: dict | None) -> bytes:
    if not state or state.get("until", 0) < time.time():
        raise PasskeyRefused(TOO_LATE)
    return base64url_to_bytes(state["challenge"])


# --- registration ---------------------------------------------------------------------


def registration_options(user: User) -> tuple[str, dict]:
    """Options for ``navigator.credentials.create()`` (JSON), and the state to keep."""
    rp_id, _ = relying_party()
    handle = user.passkeys[0].user_handle if user.passkeys else secrets.token_bytes(32)
    tenant = user.tenant.display_name
    options = generate_registration_options(
        rp_id=rp_id, rp_name=tenant, user_id=handle, user_name=user.email,
        user_display_name=f"{user.email} ({tenant})",
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=p.credential_id)
                             for p in user.passkeys],
        timeout=CEREMONY_SECONDS * 1000)
    return options_to_json(options), _state(options.challenge,
                                             handle=bytes_to_base64url(handle))


def checked_name(name: str | None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise PasskeyRefused(NO_NAME)
    if len(name) > NAME_LENGTH:
        raise PasskeyRefused(LONG_NAME)
    return name


def register(user: User, response: str | dict, state: dict | None, name: str) -> Passkey:
    """Verify the browser's answer to :func:`registration_options` and keep the passkey."""
    name = checked_name(name)
    if policy_for(user) == OFF:
        raise PasskeyRefused(TURNED_OFF)
    challenge = _challenge(state)
    rp_id, origin = relying_party()
    try:
        credential = parse_registration_credential_json(response)
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin, require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise PasskeyRefused(NOT_VERIFIED) from error
    if db.session.scalar(select(Passkey.id).where(
            Passkey.credential_id == verified.credential_id)) is not None:
        raise PasskeyRefused(ALREADY_REGISTERED)
    transports = credential.response.transports or ()
    passkey = Passkey(
        user=user, tenant_id=user.tenant_id, credential_id=verified.credential_id,
        user_handle=base64url_to_bytes(state["handle"]),
        public_key=verified.credential_public_key, sign_count=verified.sign_count,
        transports=",".join(str(getattr(t, "value", t)) for t in transports),
        name=name)
    db.session.add(passkey)
    return passkey


# --- signing in -----------------------------------------------------------------------


def authentication_options() -> tuple[str, dict]:
    """Options for ``navigator.credentials.get()`` (JSON), and the state to keep.

    No credentials are listed: the browser offers the passkeys it holds for this portal
    (discoverable credentials), so the page needs no address first and tells nobody
    whether an account exists."""
    rp_id, _ = relying_party()
    options = generate_authentication_options(
        rp_id=rp_id, user_verification=UserVerificationRequirement.REQUIRED,
        timeout=CEREMONY_SECONDS * 1000)
    return options_to_json(options), _state(options.challenge)


def credential_of(response: str | dict) -> Passkey | None:
    """The stored passkey a sign-in answer names, if any (before it is verified)."""
    try:
        credential = parse_authentication_credential_json(response)
    except (WebAuthnException, ValueError, KeyError, TypeError):
        return None
    return db.session.scalar(select(Passkey).where(Passkey.credential_id == credential.raw_id))


def authenticate(response: str | dict, state: dict | None,
                 tenant: Tenant | None = None) -> Passkey:
    """The passkey that proves who is signing in, at ``tenant``'s page (None: the portal's
    own, any tenant); PasskeyRefused otherwise. Its use is recorded on it."""
    challenge = _challenge(state)
    passkey = credential_of(response)
    if passkey is None or passkey.user.disabled:
        raise PasskeyRefused(UNKNOWN)
    if tenant is not None and passkey.tenant_id != tenant.id:
        raise PasskeyRefused(OTHER_TENANT)
    if policy_for(passkey.user) == OFF:
        raise PasskeyRefused(TURNED_OFF)
    rp_id, origin = relying_party()
    try:
        credential = parse_authentication_credential_json(response)
        # The counter is compared below, once the signature is known to be good, so that
        # only a genuine answer can mark a passkey as copied.
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin, credential_public_key=passkey.public_key,
            credential_current_sign_count=0, require_user_verification=True)
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise PasskeyRefused(NOT_VERIFIED) from error
    handle = credential.response.user_handle
    if handle is not None and bytes(handle) != passkey.user_handle:
        raise PasskeyRefused(NOT_VERIFIED)
    if (verified.new_sign_count or passkey.sign_count) and \
            verified.new_sign_count <= passkey.sign_count:
        raise PasskeyRefused(CLONED)
    _spend(challenge)
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = clock.utcnow()
    return passkey


def _spend(challenge: bytes) -> None:
    """Mark a sign-in challenge answered; PasskeyRefused if it already was (a replay of a
    captured cookie and answer, or the same answer posted twice)."""
    digest = hashlib.sha256(challenge).hexdigest()
    try:
        with db.session.begin_nested():
            db.session.add(SpentChallenge(digest=digest, expires_at=clock.utcnow() + timedelta(
                seconds=CEREMONY_SECONDS)))
    except IntegrityError:
        raise PasskeyRefused(TOO_LATE) from None


# --- the owner's and the administrator's list -----------------------------------------


def of_user(user: User, passkey_id: int) -> Passkey | None:
    """One of ``user``'s own passkeys, or None (someone else's is not found either)."""
    return db.session.scalar(select(Passkey).where(Passkey.id == passkey_id,
                                                   Passkey.user_id == user.id))


def rename(passkey: Passkey, name: str) -> None:
    passkey.name = checked_name(name)


def remove(passkey: Passkey) -> None:
    passkey.user.passkeys.remove(passkey)
    db.session.delete(passkey)


def remove_all(user: User) -> int:
    """Remove every passkey of ``user`` (an administrator's reset); how many there were."""
    count = len(user.passkeys)
    for passkey in list(user.passkeys):
        remove(passkey)
    return count
