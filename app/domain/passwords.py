"""Password hashing and the password rules (NIST SP 800-63B, OWASP ASVS 6.2).

Rules: at least 12 characters, up to 128 accepted, not one of the commonly used
passwords shipped in ``app/data``, no composition rules. Hashes are argon2id.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import secrets
from functools import cache
from importlib import resources
from itertools import pairwise

from argon2 import PasswordHasher, extract_parameters, low_level
from argon2.exceptions import InvalidHashError

from app.config import settings
from app.words import N_, Words

MIN_LENGTH = 12
MAX_LENGTH = 128

# A hash of a random string: verifying against it costs what a real check costs, so an
# unknown address takes as long to refuse as a wrong password (no enumeration by timing).
_DUMMY_PASSWORD = secrets.token_urlsafe(16)


def _hasher() -> PasswordHasher:
    params = settings().password_hash
    return _hasher_for(tuple(sorted(params.items())))


@cache
def _hasher_for(params: tuple) -> PasswordHasher:
    return PasswordHasher(**dict(params))


def hash_password(password: str, *, salt_of: str | None = None) -> str:
    """A new hash of ``password``; with ``salt_of`` (a current hash of the same person's
    account at another tenant), one that shares its salt, so that :func:`matching` checks
    all of that address's accounts with one computation."""
    hasher = _hasher()
    salt = _salt(salt_of) if salt_of and not hasher.check_needs_rehash(salt_of) else None
    return hasher.hash(password, salt=salt)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; with no stored hash, spend the same time and fail."""
    return matching([stored_hash], password)[0]


def matching(stored_hashes: list[str | None], password: str) -> list[bool]:
    """Which of ``stored_hashes`` ``password`` matches, for one computation per salt.

    An address with accounts at several tenants shares one salt (see ``salt_of``), so
    checking it costs what checking an unknown address costs: the time a refusal takes
    does not tell how many accounts an address has. With nothing to check, a dummy hash
    is computed instead.
    """
    computed: dict[str, str | None] = {}
    found = []
    for stored in stored_hashes:
        if stored is None:
            found.append(False)
            continue
        head, _, digest = stored.rpartition("$")
        if head not in computed:
            computed[head] = _digest(stored, password)
        found.append(computed[head] is not None and hmac.compare_digest(computed[head], digest))
    if not computed:
        _digest(_dummy_hash(_hasher()), password)
    return found


def _digest(stored_hash: str, password: str) -> str | None:
    """``password`` hashed with ``stored_hash``'s parameters and salt, encoded as it is;
    None when ``stored_hash`` is not an argon2 hash."""
    try:
        params = extract_parameters(stored_hash)
        salt = _salt(stored_hash)
    except (InvalidHashError, ValueError):
        return None
    encoded = low_level.hash_secret(
        password.encode(), salt, time_cost=params.time_cost, memory_cost=params.memory_cost,
        parallelism=params.parallelism, hash_len=params.hash_len, type=params.type,
        version=params.version)
    return encoded.decode().rpartition("$")[2]


def _salt(stored_hash: str) -> bytes:
    fields = stored_hash.split("$")  # "", type, version, parameters, salt, hash
    if len(fields) != 6:
        raise ValueError("not an encoded argon2 hash")
    encoded = fields[4]
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)


def needs_rehash(stored_hash: str, *, salt_of: str | None = None) -> bool:
    """Whether a matching password should be hashed anew: weaker parameters than today's,
    or a salt other than that of the same address's other accounts (``salt_of``)."""
    hasher = _hasher()
    if hasher.check_needs_rehash(stored_hash):
        return True
    return bool(salt_of) and not hasher.check_needs_rehash(salt_of) and \
        _salt(stored_hash) != _salt(salt_of)


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(_DUMMY_PASSWORD)


def problems(password: str, *, email: str = "") -> list[Words]:
    """What is wrong with ``password`` as a new password; empty when it is acceptable.

    (The lengths are written into the sentences, as the catalogs hold them:
    tests/unit/test_passwords.py checks they are MIN_LENGTH and MAX_LENGTH.)
    """
    found = []
    if len(password) < MIN_LENGTH:
        found.append(Words(N_("Use at least 12 characters.")))
    if len(password) > MAX_LENGTH:
        found.append(Words(N_("Use at most 128 characters.")))
    normalised = password.strip().lower()
    if email and normalised in {email.lower(), email.partition("@")[0].lower()}:
        found.append(Words(N_("Do not use your email address as your password.")))
    elif _predictable(normalised):
        found.append(Words(N_("This password is too common; choose a less predictable one.")))
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
