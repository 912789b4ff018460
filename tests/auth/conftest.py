"""Fixtures of the auth tests: tenant Acme and an external recipient of it, Alice."""

import pytest


@pytest.fixture
def alice(acme, make_user):
    return make_user(acme, "alice@partner.test")
