"""Fixtures of the administrator console's tests."""

import pytest


@pytest.fixture
def acme(acme, make_user):
    """Tenant acme (acme.test) with its administrator, admin@acme.test."""
    make_user(acme, "admin@acme.test", role="admin")
    return acme


@pytest.fixture
def as_admin(client, auth, acme):
    """A browser signed in as the administrator of tenant acme."""
    auth.sign_in("admin@acme.test", slug="acme")
    return client
