"""Random tokens handed to browsers, stored only as digests."""

import hashlib
import secrets


def new_token() -> tuple[str, str]:
    """A fresh (token, digest) pair: the token goes to the user, the digest to the database."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
