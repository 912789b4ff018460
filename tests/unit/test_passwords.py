"""Password hashing strength and the password rules."""

import pytest
from argon2 import PasswordHasher, extract_parameters
from support import PASSWORD

from app import config
from app.domain import passwords


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


@pytest.fixture
def computations(monkeypatch):
    """Counts the password hash computations that checks make."""
    counted = []
    real = passwords._digest
    monkeypatch.setattr(passwords, "_digest", lambda *a: counted.append(1) or real(*a))
    return counted


def test_one_address_at_several_tenants_costs_one_computation(
        app, make_tenant, make_user, computations):
    from app.domain import accounts
    from app.extensions import db

    tenants = [make_tenant(slug, domains=[f"{slug}.test"]) for slug in ("acme", "globex", "ini")]
    users = [make_user(tenant, "pat@partner.test", password=None) for tenant in tenants]
    for user, password in zip(users, ["first password x", "second password", "third password"],
                              strict=True):
        user.password_hash = accounts.hash_for(user, password)
    db.session.commit()
    assert len({passwords._salt(u.password_hash) for u in users}) == 1

    for attempt, expected in [("second password", [False, True, False]),
                              ("wrong password!!", [False, False, False])]:
        computations.clear()
        found = passwords.matching([u.password_hash for u in users], attempt)
        assert found == expected and len(computations) == 1
    for candidates in ([], [None], [users[0].password_hash]):
        computations.clear()
        assert passwords.matching(candidates, "anything at all") == [False] * len(candidates)
        assert len(computations) == 1


def test_an_account_salted_on_its_own_joins_its_address_at_the_next_sign_in(
        app, make_tenant, make_user):
    from app.domain import accounts
    from app.extensions import db

    acme, globex = make_tenant("acme"), make_tenant("globex", domains=["globex.test"])
    first = make_user(acme, "pat@partner.test")  # salted on their own, as before
    second = make_user(globex, "pat@partner.test")
    assert passwords._salt(first.password_hash) != passwords._salt(second.password_hash)
    assert accounts.check_credentials("pat@partner.test", PASSWORD, globex) == [second]
    db.session.commit()
    assert passwords._salt(second.password_hash) == passwords._salt(first.password_hash)
    assert accounts.check_credentials("pat@partner.test", PASSWORD) == [first, second]


def test_accounts_of_one_address_imported_together_share_a_salt(app):
    from sqlalchemy import select

    from app.domain import config_file
    from app.extensions import db
    from app.models import User

    config_file.import_text("tenants:\n" + "".join(
        f"  - {{slug: {slug}, name: {slug}, domains: [{slug}.test], users: [{{email: "
        f"pat@partner.test, role: external, password: '{slug} horse battery'}}]}}\n"
        for slug in ("acme", "globex", "initech")))
    db.session.commit()
    hashes = db.session.scalars(select(User.password_hash)).all()
    assert len(hashes) == 3 and len({passwords._salt(h) for h in hashes}) == 1


def test_an_account_hashed_with_old_parameters_does_not_split_its_addresss_salt(
        app, make_tenant, make_user, computations):
    """The first account of an address, hashed before the parameters were raised (and
    never signed in again), must not leave the others each with a salt of their own."""
    from app.domain import accounts
    from app.extensions import db

    old = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1).hash("first password x")
    acme = make_tenant("acme")
    first = make_user(acme, "pat@partner.test", password=None)
    first.password_hash, first.disabled = old, True
    others = [make_user(make_tenant(slug, domains=[f"{slug}.test"]), "pat@partner.test",
                        password=None) for slug in ("globex", "initech")]
    for user, password in zip(others, ["second password", "third password"], strict=True):
        user.password_hash = accounts.hash_for(user, password)
    db.session.commit()
    assert passwords._salt(others[0].password_hash) == passwords._salt(others[1].password_hash)
    computations.clear()
    assert accounts.check_credentials("pat@partner.test", "wrong password!!") == []
    assert len(computations) == 1


def test_the_length_refusals_name_the_lengths():
    """The catalogs hold them with the numbers written in (app/domain/passwords.py)."""
    assert f"Use at least {passwords.MIN_LENGTH} characters." in passwords.problems("x")
    assert f"Use at most {passwords.MAX_LENGTH} characters." in passwords.problems(
        "plum orbit " * 20)
