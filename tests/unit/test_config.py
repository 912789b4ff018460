"""Configuration from the environment and the generated secret key."""

import os
import threading

import pytest

from app import config


def test_defaults_follow_design(tmp_path):
    settings = config.load(str(tmp_path), environ={})
    assert settings["DATABASE_URL"] == f"sqlite:///{tmp_path / 'ccm.sqlite3'}"
    assert settings["BASE_URL"] == "http://127.0.0.1:8000"
    assert settings["HTTP_LISTEN"] == "127.0.0.1:8000"
    assert settings["SMTP_LISTEN"] == "127.0.0.1:2525"
    assert settings["RELAY_NETWORKS"] == "127.0.0.0/8,::1/128"
    assert settings["OUTBOUND"] == f"maildir:{tmp_path / 'outbox'}"
    assert settings["INTERNAL_RELAY"] == settings["OUTBOUND"]
    assert settings["SMTP_DELIVERY_PORT"] == 25
    assert settings["MAX_MESSAGE_BYTES"] == 52428800
    assert settings["SESSION_COOKIE_HTTPONLY"] is True
    assert settings["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert settings["SESSION_COOKIE_SECURE"] is False


def test_environment_overrides(tmp_path):
    settings = config.load(str(tmp_path), environ={
        "CCM_DATABASE_URL": "postgresql+psycopg://db/ccm",
        "CCM_BASE_URL": "https://mail.acme.test",
        "CCM_OUTBOUND": "smtp://127.0.0.1:2626",
        "CCM_MAX_MESSAGE_BYTES": "1000",
        "CCM_SECRET_KEY": "from the environment",
    })
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://db/ccm"
    assert settings["INTERNAL_RELAY"] == "smtp://127.0.0.1:2626"
    assert settings["MAX_MESSAGE_BYTES"] == 1000
    assert settings["SECRET_KEY"] == "from the environment"
    # Over HTTPS the cookie is Secure and pinned to the host with the __Host- prefix.
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["SESSION_COOKIE_NAME"] == "__Host-ccm_session"
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize("variable", ["CCM_RELAY_NETWORKS", "CCM_MX_ALLOWED_NETWORKS",
                                      "CCM_TENANT_RELAY_ALLOWED_NETWORKS"])
def test_a_network_list_that_cannot_be_read_stops_the_start(tmp_path, variable):
    environ = {"CCM_SECRET_KEY": "k", variable: "10.0.0.0/8, 10.0.0.300/32"}
    with pytest.raises(ValueError, match=f"{variable}: .*10.0.0.300"):
        config.load(str(tmp_path), environ=environ)
    environ[variable] = "10.0.0.0/8, fd00::/8,"
    assert config.load(str(tmp_path), environ=environ)[variable.removeprefix("CCM_")] == \
        "10.0.0.0/8, fd00::/8,"


def test_secret_key_is_generated_once_kept_private_and_reused(tmp_path):
    first = config.load(str(tmp_path), environ={})["SECRET_KEY"]
    second = config.load(str(tmp_path), environ={})["SECRET_KEY"]
    assert first == second
    assert len(first) >= 40
    assert os.stat(tmp_path / "secret_key").st_mode & 0o077 == 0


def test_processes_starting_together_agree_on_one_key(tmp_path):
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(config._instance_secret(tmp_path)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]


def test_the_settings_accessor_reads_the_running_application_afresh(app):
    """Domain code asks config.settings() (tests/test_architecture.py holds it to that):
    every field is a setting the application has, and a change is seen at once."""
    assert set(config.Settings.__dataclass_fields__) <= {name.lower() for name in app.config}
    assert config.settings().base_url == "http://localhost"
    app.config["MAX_MESSAGE_BYTES"] = 1234
    assert config.settings().max_message_bytes == 1234
    with pytest.raises(AttributeError):  # frozen: a setting is changed in one place
        config.settings().https = True
