"""Fixtures of the administrator console's tests."""

import pytest


@pytest.fixture
def as_admin(app, client, auth, make_tenant, make_user):
    """A browser signed in as the administrator of tenant acme (acme.test)."""
    tenant = make_tenant("acme", domains=["acme.test"])
    make_user(tenant, "admin@acme.test", role="admin")
    auth.sign_in("admin@acme.test", slug="acme")
    return client
