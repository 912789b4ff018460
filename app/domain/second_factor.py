"""The second factor: time-based one-time passwords (RFC 6238) and recovery codes.

Any authenticator app works. A code is accepted one 30-second step either side of now
(clock drift) and only once: the last step used is kept, and an older or equal one is
refused. Recovery codes are single use and stored as digests.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime

import pyotp
import segno
from sqlalchemy import select

from app import clock
from app.domain import tokens
from app.extensions import db
from app.models import RecoveryCode, Side, User

#: steps accepted either side of the current one
DRIFT_STEPS = 1
RECOVERY_CODES = 10
#: what a tenant may ask of each side (Tenant.second_factor_external, _internal)
POLICIES = ("off", "optional", "required")


def policy_for(user: User) -> str:
    """What the user's tenant asks of them: off, optional or required."""
    tenant = user.tenant
    return tenant.second_factor_internal if user.kind == Side.INTERNAL else \
        tenant.second_factor_external


def enrolled(user: User) -> bool:
    return user.totp_secret is not None


def must_enrol(user: User) -> bool:
    return policy_for(user) == "required" and not enrolled(user)


def new_secret() -> str:
    return pyotp.random_base32()


def enrolment_qr(user: User, secret: str) -> str:
    """The otpauth:// URI as a QR code, an SVG data URI rendered here (no outside service)."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email,
                                              issuer_name=user.tenant.display_name)
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _matching_step(secret: str, code: str, now: datetime | None = None) -> int | None:
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now or datetime.now(UTC))
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def verify(user: User, code: str, now: datetime | None = None) -> bool:
    """Check a code from the app (or a recovery code); a used code never works again."""
    if not enrolled(user):
        return False
    step = _matching_step(user.totp_secret, code, now)
    if step is not None and step > (user.totp_last_step if user.totp_last_step is not None
                                    else -1):
        user.totp_last_step = step
        return True
    return _use_recovery_code(user, code)


def enrol(user: User, secret: str, code: str, now: datetime | None = None) -> list[str] | None:
    """Turn the second factor on if ``code`` proves the app has ``secret``; the recovery
    codes (shown once), or None."""
    step = _matching_step(secret, code, now)
    if step is None:
        return None
    user.totp_secret, user.totp_last_step, user.totp_enrolled_at = secret, step, clock.utcnow()
    return new_recovery_codes(user)


def new_recovery_codes(user: User) -> list[str]:
    db.session.query(RecoveryCode).filter_by(user_id=user.id).delete()
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    for code in codes:
        db.session.add(RecoveryCode(user_id=user.id, code_digest=tokens.digest(code)))
    return codes


def _use_recovery_code(user: User, code: str) -> bool:
    record = db.session.scalar(select(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None),
        RecoveryCode.code_digest == tokens.digest(code.strip().lower())))
    if record is None:
        return False
    record.used_at = clock.utcnow()
    return True


def reset(user: User) -> None:
    """Remove the second factor (an administrator's reset, or the user's own choice)."""
    user.totp_secret = user.totp_last_step = user.totp_enrolled_at = None
    db.session.query(RecoveryCode).filter_by(user_id=user.id).delete()
