"""Password hashing and the password rules (NIST SP 800-63B, OWASP ASVS 6.2).

Rules: at least 12 characters, up to 128 accepted, not one of the commonly used
passwords shipped in ``app/data``, no composition rules. Hashes are argon2id.
"""

from __future__ import annotations

import gzip
import secrets
from functools import cache
from importlib import resources
from itertools import pairwise

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

MIN_LENGTH = 12
MAX_LENGTH = 128

# A hash of a random string: verifying against it costs what a real check costs, so an
# unknown address takes as long to refuse as a wrong password (no enumeration by timing).
_DUMMY_PASSWORD = secrets.token_urlsafe(16)


def _hasher() -> PasswordHasher:
    params = current_app.config["PASSWORD_HASH"]
    return _hasher_for(tuple(sorted(params.items())))


@cache
def _hasher_for(params: tuple) -> PasswordHasher:
    return PasswordHasher(**dict(params))


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; with no stored hash, spend the same time and fail."""
    hasher = _hasher()
    if stored_hash is None:
        hasher.verify(_dummy_hash(hasher), _DUMMY_PASSWORD)
        return False
    try:
        return hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher().check_needs_rehash(stored_hash)


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(_DUMMY_PASSWORD)


def problems(password: str, *, email: str = "") -> list[str]:
    """What is wrong with ``password`` as a new password; empty when it is acceptable."""
    found = []
    if len(password) < MIN_LENGTH:
        found.append(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        found.append(f"Use at most {MAX_LENGTH} characters.")
    normalised = password.strip().lower()
    if email and normalised in {email.lower(), email.partition("@")[0].lower()}:
        found.append("Do not use your email address as your password.")
    elif _predictable(normalised):
        found.append("This password is too common; choose a less predictable one.")
    return found


_DECORATION = "0123456789!@#$%^&*()-_=+.,;:?~ "


def _predictable(password: str) -> bool:
    """Common, a common word dressed up with digits or symbols, repetitive or sequential.

    NIST SP 800-63B 3.1.1.2 asks for exactly these checks beside the breached-list one.
    """
    common = common_passwords()
    stripped = password.strip(_DECORATION)
    if password in common or (stripped and stripped in common):
        return True
    if len(set(password)) < 5:
        return True  # "aaaaaaaaaaaa", "abababababab"
    size = len(password)
    if any(password == password[:n] * (size // n) for n in range(1, size // 2 + 1)
           if size % n == 0):
        return True  # "passwordpassword"
    steps = {ord(b) - ord(a) for a, b in pairwise(password)}
    # "abcdefghijklm", and digit runs that wrap round: "987654321098", "567890123456"
    return steps <= {1, -9} or steps <= {-1, 9}


@cache
def common_passwords() -> frozenset[str]:
    """The 20,000 most common passwords (Royce Williams' list, as shipped by Django)."""
    data = resources.files("app").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode().split())


def generate() -> str:
    """A password for a new account: 20 characters from an unambiguous alphabet."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(20))
