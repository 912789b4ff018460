"""Configuration an operator can check: every ``CCM_*`` variable read at start (a bad one
stops every process with one line naming it), ``ccm config check``, ``ccm config import
--dry-run`` and what ``ccm db upgrade`` says it applied."""

from __future__ import annotations

import os
import subprocess

import pytest
import trustme
from servers import CCM, ccm_environment
from sqlalchemy import func, select

from app import config, create_app
from app.domain import config_checks
from app.extensions import db
from app.models import Tenant, User

#: for each kind of setting, values that cannot be read: the whole class, not one example
NOT_WHOLE_NUMBERS = ["sixty", "4.5", "1e3", "0x10", "5 s", "٣", "--1", "1_000"]
BAD = {
    "CCM_LOG_FORMAT": ["JSON", "syslog", "txt"],
    "CCM_LOG_LEVEL": ["info", "verbose", "10"],
    "CCM_SMTP_TIMEOUT": [*NOT_WHOLE_NUMBERS, "0", "-1", "-60"],
    "CCM_DELIVERY_THREADS": [*NOT_WHOLE_NUMBERS, "0", "-4", "100000"],
    "CCM_PROXY_HOPS": ["one", "-1", "1.0", "99"],
    "CCM_SMTP_DELIVERY_PORT": ["smtp", "0", "-25", "65536", "25.0"],
    "CCM_MAX_MESSAGE_BYTES": ["50M", "0", "-1", "5e7"],
    "CCM_RETRY_FIRST_SECONDS": ["5m", "0", "-300"],
    "CCM_WORKER_INTERVAL": ["fast", "0", "-5"],
    "CCM_RELAY_NETWORKS": ["10.0.0.300/8", "garbage", "10.0.0.0/33", "10.0.0.0/8;192.0.2.0/24",
                           "10.0.0.0/8,,fe80::/129", "localhost"],
    "CCM_PROXY_NETWORKS": ["127.0.0.1/33", "proxy.example", "::1/129"],
    "CCM_MX_ALLOWED_NETWORKS": ["10/8", "10.0.0.0/8, x"],
    "CCM_OUTBOUND": ["smtp:/host", "mxx", "MX", " mx", "smtp://", "smtp://host:0",
                     "smtp://host:99999", "smtp://user@host", "smtp://host/path",
                     "smtp://host:25 ", "maildir:", "relay.example:25", "smtp://127.1",
                     "lmtp://host", "smtp://[::1", "smtp://host.:25"],
    "CCM_INTERNAL_RELAY": ["smtp:/mail.acme.test", "mailhost", "smtp://a b", "maildir"],
    "CCM_DATABASE_URL": ["postgres://ccm@db/ccm", "mysql://ccm@db/ccm", "db/ccm",
                         "postgresql+psycopg2://ccm@db/ccm", "sqlite//ccm.sqlite3",
                         "postgresql+psycopg://ccm@db:port/ccm"],
    "CCM_BASE_URL": ["mail.example.com", "ftp://mail.example.com", "https://",
                     "https://user@mail.example.com", "https://mail.example.com:99999",
                     "https://mail.example.com/?a=1", "https://mail example.com",
                     "https://mail.example.com/?", "https://mail.example.com/#"],
    "CCM_HTTP_LISTEN": ["8000", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:0",
                        "127.0.0.1:65536", "[::1", "::1:8000", "a b:80 c"],
    "CCM_SMTP_LISTEN": ["2525", "0.0.0.0:99999", "127.0.0.1:25 127.0.0.2:25", "[::]x"],
    "CCM_DNS_SERVERS": ["dns.google", "8.8.8.8:dns", "8.8.8.8:0", "8.8.8.8,resolver",
                        "[2001:db8::1]:70000", "[2001:db8::1"],
    "CCM_RATELIMIT_STORAGE": ["redis:/host", "redis", "rediss//host", "memcache://h",
                              "async+redis://host", "http://host"],
    "CCM_HELO_NAME": ["bad name", "-mail.example", "mail..example", "mail_1.example",
                      "mail.example.com:25"],
    "CCM_MAIL_FROM": ["nobody", "@example.com", "postmaster@", "a b@example.com",
                      "<postmaster@example.com>", "postmaster@bad domain"],
}
#: values of the same variables that must be accepted
GOOD = {
    "CCM_SMTP_TIMEOUT": ["1", "60", " 30 ", "+5"],
    "CCM_PROXY_HOPS": ["0", "2"],
    "CCM_SMTP_DELIVERY_PORT": ["25", "2525", "65535"],
    "CCM_RELAY_NETWORKS": ["10.0.0.0/8, 192.0.2.1", "::1/128"],
    "CCM_OUTBOUND": ["mx", "smtp://relay.example.com", "smtp://192.0.2.10:587",
                     "smtp://[2001:db8::1]:25", "maildir:/var/lib/ccm/outbox"],
    "CCM_INTERNAL_RELAY": ["smtp://mail.acme.test:25"],
    "CCM_DATABASE_URL": ["postgresql+psycopg://ccm:pw@db.internal:5432/ccm",
                         "sqlite:////var/lib/ccm/ccm.sqlite3"],
    "CCM_BASE_URL": ["https://mail.example.com", "http://127.0.0.1:8000",
                     "https://mail.example.com/"],
    "CCM_HTTP_LISTEN": ["127.0.0.1:8000", "0.0.0.0:80", "[::]:8000", "*:8000",
                        "localhost:8000", "127.0.0.1:8000 [::1]:8000"],
    "CCM_SMTP_LISTEN": ["0.0.0.0:25", "[::1]:2525", "mail.example.com:25"],
    "CCM_DNS_SERVERS": ["127.0.0.1", "127.0.0.1:5353", "2001:db8::1", "[2001:db8::1]:53",
                        "192.0.2.1, 192.0.2.2:53"],
    "CCM_RATELIMIT_STORAGE": ["memory://", "redis://redis:6379", "rediss://:pw@redis:6380/1",
                              "redis+sentinel://s1:26379/mymaster"],
    "CCM_HELO_NAME": ["mail.example.com", "gateway"],
    "CCM_MAIL_FROM": ["postmaster@example.com", "no-reply@mail.acme.test"],
}


def load(tmp_path, environ: dict) -> dict:
    """The settings as every process reads them (the factory's own checks included)."""
    return config.load(str(tmp_path), environ, checks=config_checks.SETTING_CHECKS)


def test_every_bad_value_is_refused_in_one_line_naming_its_variable(tmp_path):
    for variable, values in BAD.items():
        for value in values:
            with pytest.raises(config.ConfigError) as refused:
                load(tmp_path, {variable: value})
            [problem] = refused.value.problems
            assert problem.startswith(f"{variable}: "), (variable, value, problem)
            assert "\n" not in problem and len(problem) < 200, problem


def test_good_values_are_accepted(tmp_path):
    for variable, values in GOOD.items():
        for value in values:
            load(tmp_path, {variable: value})


def test_empty_means_the_default(tmp_path):
    settings = load(tmp_path, {variable: "" for variable in BAD})
    assert settings["SMTP_TIMEOUT"] == 60 and settings["OUTBOUND"].startswith("maildir:")


def test_every_variable_is_checked_or_is_free_text():
    free_text = {"SECRET_KEY", "SITE_NAME", "RATELIMIT_PREFIX", "TLS_CA_FILE", "SMTP_TLS_CERT",
                 "SMTP_TLS_KEY",  # the files are loaded by ccm config check and the processes
                 "METRICS_DIR"}  # a folder, made at start
    checked = set(config.CHECKS) | set(config_checks.SETTING_CHECKS)
    assert {name for name, *_ in config.ENVIRONMENT} - checked == free_text


# --- as an operator sees it ---------------------------------------------------------------


def ccm(tmp_path, *args, **environ) -> subprocess.CompletedProcess:
    return subprocess.run([str(CCM), *args], env=ccm_environment(tmp_path, **environ),
                          capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("round_", range(3))
def test_all_bad_settings_at_once_one_line_each_and_no_process_starts(tmp_path, round_):
    settings = {variable: values[round_ % len(values)] for variable, values in BAD.items()}
    for command in (["config", "check"], ["web"]):
        done = ccm(tmp_path, *command, **settings)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.splitlines()
        assert sorted(line.split(":")[1].strip() for line in lines) == sorted(BAD), lines
        assert all(line.startswith("ccm: CCM_") for line in lines)
        assert "Traceback" not in done.stderr and done.stdout == ""


def test_config_check_prints_the_settings_in_effect_with_secrets_masked(tmp_path):
    done = ccm(tmp_path, "config", "check", CCM_SECRET_KEY="k3y-never-shown",
               CCM_RATELIMIT_STORAGE="redis://:redis-pw@127.0.0.1:6390/0",
               CCM_BASE_URL="https://mail.example.com")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    shown = dict(line.split("=", 1) for line in done.stdout.splitlines()
                 if not line.startswith("#"))
    assert set(shown) == {variable for _, variable, _, _ in config.ENVIRONMENT}
    assert shown["CCM_SECRET_KEY"] == "********"
    assert shown["CCM_RATELIMIT_STORAGE"] == "redis://:***@127.0.0.1:6390/0"
    assert shown["CCM_BASE_URL"] == "https://mail.example.com"
    assert shown["CCM_SMTP_TIMEOUT"] == "60  # default"
    assert "k3y-never-shown" not in done.stdout and "redis-pw" not in done.stdout


def test_config_check_names_a_database_it_cannot_reach_without_its_password(tmp_path):
    from servers import free_port

    url = f"postgresql+psycopg://ccm:db-pw@127.0.0.1:{free_port()}/ccm?password=db-pw"
    done = ccm(tmp_path, "config", "check", CCM_DATABASE_URL=url)
    assert done.returncode == 2
    assert done.stderr == "ccm: CCM_DATABASE_URL: database: unreachable\n"
    assert "db-pw" not in done.stdout + done.stderr
    assert "CCM_DATABASE_URL=postgresql+psycopg://ccm:***@127.0.0.1" in done.stdout


def test_config_check_loads_the_certificate_files_as_the_processes_will(tmp_path):
    ca = trustme.CA()
    good, other = ca.issue_cert("mail.example.com"), ca.issue_cert("other.example.com")
    good.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    good.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    other.private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "empty.pem").write_text("")
    fine = {"CCM_SMTP_TLS_CERT": str(tmp_path / "cert.pem"),
            "CCM_SMTP_TLS_KEY": str(tmp_path / "key.pem"),
            "CCM_TLS_CA_FILE": str(tmp_path / "ca.pem")}
    assert ccm(tmp_path, "config", "check", **fine).returncode == 0
    wrong = [
        ({"CCM_SMTP_TLS_KEY": str(tmp_path / "other-key.pem")}, "CCM_SMTP_TLS_CERT"),
        ({"CCM_SMTP_TLS_CERT": str(tmp_path / "missing.pem")}, "CCM_SMTP_TLS_CERT"),
        ({"CCM_SMTP_TLS_CERT": str(tmp_path / "empty.pem")}, "CCM_SMTP_TLS_CERT"),
        ({"CCM_SMTP_TLS_CERT": "", "CCM_SMTP_TLS_KEY": str(tmp_path / "key.pem")},
         "CCM_SMTP_TLS_KEY"),
        ({"CCM_TLS_CA_FILE": str(tmp_path / "missing.pem")}, "CCM_TLS_CA_FILE"),
        ({"CCM_TLS_CA_FILE": str(tmp_path / "empty.pem")}, "CCM_TLS_CA_FILE"),
    ]
    for change, variable in wrong:
        done = ccm(tmp_path, "config", "check", **{**fine, **change})
        assert done.returncode == 2, change
        [line] = done.stderr.splitlines()
        assert line.startswith(f"ccm: {variable}: "), line


# --- ccm config import --dry-run ------------------------------------------------------------

FILE = """\
tenants:
  - slug: acme
    name: Acme Corp
    domains: [acme.test]
    application_settings:
      - {name: Default, default: true}
    users:
      - {email: admin@acme.test, role: admin}
      - {email: alice@acme.test, role: internal}
    policies:
      - {name: Secure keyword, kind: content, phrases: ["[secure]"], where: [subject]}
"""


def counts() -> tuple[int, int]:
    db.session.rollback()
    return (db.session.scalar(select(func.count()).select_from(Tenant)),
            db.session.scalar(select(func.count()).select_from(User)))


def test_dry_run_lists_what_would_change_and_writes_nothing(runner, tmp_path):
    path = tmp_path / "acme.yaml"
    path.write_text(FILE)
    result = runner.invoke(args=["config", "import", "--dry-run", str(path)])
    assert result.exit_code == 0, result.output
    assert "would make 6 change(s). Nothing was written." in result.output
    for line in ("create tenant acme", "create domain acme.test of tenant acme",
                 "create user admin@acme.test of tenant acme",
                 "create user alice@acme.test of tenant acme",
                 "create application settings Default of tenant acme",
                 "create policy Secure keyword of tenant acme"):
        assert f"  {line}\n" in result.output
    assert "new password" not in result.output
    assert counts() == (0, 0)

    assert runner.invoke(args=["config", "import", str(path)]).exit_code == 0
    assert counts() == (1, 2)
    again = runner.invoke(args=["config", "import", "--dry-run", str(path)])
    assert "would make no change(s)" in again.output
    path.write_text(FILE.replace("role: internal", "role: admin")
                    .replace("name: Acme Corp", "name: Acme Group"))
    changed = runner.invoke(args=["config", "import", "--dry-run", str(path)])
    assert changed.output.splitlines()[1:] == ["  update tenant acme: name",
                                               "  update user alice@acme.test of tenant "
                                               "acme: role"]
    db.session.rollback()
    assert db.session.scalar(select(User.role).where(User.email == "alice@acme.test")) \
        == "internal"


def test_dry_run_of_a_wrong_file_names_every_problem(runner, tmp_path):
    path = tmp_path / "wrong.yaml"
    path.write_text(FILE.replace("role: admin", "role: boss").replace("slug: acme", "slug: A"))
    result = runner.invoke(args=["config", "import", "--dry-run", str(path)])
    assert result.exit_code == 1
    assert "line 2, tenants[0].slug" in result.output
    assert "line 8, tenants[0].users[0].role" in result.output
    assert counts() == (0, 0)


# --- ccm db upgrade ------------------------------------------------------------------------


def test_db_upgrade_says_what_it_applied_then_that_it_is_at_head(tmp_path):
    if os.environ.get("CCM_TEST_DATABASE_URL"):
        pytest.skip("needs a database of its own to start empty")
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}",
                      "SECRET_KEY": "x"}, instance_path=str(tmp_path))
    runner = app.test_cli_runner()
    first = runner.invoke(args=["db", "upgrade", "0002"])
    assert first.output.splitlines() == [
        "applied 0001: tenants, users, application settings, sessions, reset links",
        "applied 0002: the gateway: messages, recipients, delivery events, policies, "
        "outbound queue, templates"]
    rest = runner.invoke(args=["db", "upgrade"]).output.splitlines()
    assert rest[0].startswith("applied 0003: ") and len(rest) >= 10
    head = rest[-1].split(":")[0].removeprefix("applied ")
    assert runner.invoke(args=["db", "upgrade"]).output == f"already at head {head}\n"
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(("url", "warned"), [
    ("https://mail.example.com", []),
    ("http://127.0.0.1:8000", []),
    ("http://localhost:8000", []),
    ("http://[::1]:8000", []),
    ("http://mail.example.com", ["plain http"]),
    ("https://203.0.113.7", ["IP address"]),
    ("http://203.0.113.7:8000", ["plain http", "IP address"]),
    ("https://[2001:db8::7]", ["IP address"]),
])
def test_a_base_url_that_makes_notifications_look_suspect_is_warned_about(url, warned):
    warnings = config_checks.base_url_warnings(url)
    assert len(warnings) == len(warned)
    for warning, words in zip(warnings, warned, strict=True):
        assert warning.startswith("CCM_BASE_URL: ") and words in warning


def test_config_check_and_start_up_warn_about_a_plain_http_base_url(tmp_path, caplog):
    from app import cli

    done = ccm(tmp_path, "config", "check", CCM_BASE_URL="http://mail.example.com")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ("ccm: warning: CCM_BASE_URL: http://mail.example.com is plain "
                           "http: notifications link to it and recipients sign in there, "
                           "so use https://\n")
    app = create_app({"BASE_URL": "http://203.0.113.7"}, instance_path=str(tmp_path))
    with app.app_context():
        cli._warn_at_start()
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [line.split(" is ")[1].split(":")[0] for line in logged] == [
        "plain http", "an IP address"]
