"""Password hashing strength and the password rules."""

import pytest
from argon2 import PasswordHasher, extract_parameters

from app import config, passwords


def test_production_hash_is_argon2id_at_or_above_the_asvs_minimum(app):
    app.config["PASSWORD_HASH"] = config.PASSWORD_HASH
    stored = passwords.hash_password("plum orbit lantern meadow")
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    # OWASP's argon2id floor: 19 MiB of memory, 2 iterations, 1 degree of parallelism.
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert params.parallelism >= 1
    assert passwords.verify_password(stored, "plum orbit lantern meadow")
    assert not passwords.verify_password(stored, "plum orbit lantern meadoW")


def test_weaker_stored_hashes_are_flagged_for_rehash(app):
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("x" * 12)
    app.config["PASSWORD_HASH"] = config.PASSWORD_HASH
    assert passwords.needs_rehash(weak)


def test_a_missing_or_broken_hash_never_verifies(app):
    assert passwords.verify_password(None, "anything at all") is False
    assert passwords.verify_password("not a hash", "anything at all") is False


@pytest.mark.parametrize(
    "password",
    [
        "short",
        "q1w2e3r4t5y6",  # on the common list
        "qwerty123456789",  # a common word dressed up with digits
        "!!password2024!!",
        "aaaaaaaaaaaaaaaa",
        "abababababababab",
        "passwordpassword",
        "abcdefghijklmnop",
        "9876543210987",
        "x" * 129,
    ],
)
def test_refused(password):
    assert passwords.problems(password)


@pytest.mark.parametrize(
    "password",
    [
        "plum orbit lantern meadow",
        "correct horse battery staple",
        "Tr0ub4dor&3 is not enough but this is",
        "ünïcødé 🔐 passphrase",
        ("plum orbit lantern meadow " * 5)[:128],  # 128 characters, the maximum
    ],
)
def test_accepted(password):
    assert passwords.problems(password, email="alice@partner.test") == []


def test_the_address_itself_is_refused():
    assert passwords.problems("alice.longname@partner.test", email="alice.longname@partner.test")
    assert passwords.problems("alice.longname", email="alice.longname@partner.test")


def test_generated_passwords_pass_the_rules_and_differ():
    generated = {passwords.generate() for _ in range(50)}
    assert len(generated) == 50
    assert all(passwords.problems(p) == [] for p in generated)


def test_the_shipped_list_is_loaded():
    assert len(passwords.common_passwords()) > 19000
