"""deploy/: the files an operator installs, checked as far as this machine allows.

The nginx site runs for real, in Debian's nginx, in front of a real ``ccm web``: the test
changes only what must differ on a test machine (see :func:`site_for_test`). The systemd
units go through ``systemd-analyze verify``; the Dockerfile and compose.yaml, which no
Docker engine here can run, are read and every command, file and variable they name is
checked against the project.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from servers import LOOPBACK, NGINX, CcmWeb, NginxSite, ThrowawayCA, Visitor, free_port
from sqlalchemy import select
from support import PASSWORD

from app import config, create_app
from app.domain import config_checks
from app.extensions import db
from app.models import AccessEvent

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
INSTALLED_CCM = "/opt/ccm/bin/ccm"
CCM = Path(sys.executable).with_name("ccm")


@pytest.fixture(scope="module")
def commands(tmp_path_factory):
    """The ``ccm`` commands, by name, as the installed command has them."""
    instance = tmp_path_factory.mktemp("commands")
    return create_app({"DATABASE_URL": f"sqlite:///{instance / 'ccm.sqlite3'}"},
                      instance_path=str(instance)).cli.commands


def check_ccm_command(commands, argv: list[str]) -> None:
    """``argv`` is ``ccm`` and a command it has, with options that command takes."""
    assert Path(argv[0]).name == "ccm", argv
    name, *arguments = argv[1:]
    assert name in commands, argv
    commands[name].make_context(name, list(arguments))  # refuses an unknown option


def documented(variable: str) -> bool:
    return variable == "CCM_INSTANCE_PATH" or any(
        variable == name for _, name, _, _ in config.ENVIRONMENT)


# --- nginx --------------------------------------------------------------------------------


def site_for_test(*, http_port: int, https_port: int, upstream: int,
                  certificate: Path) -> str:
    """deploy/nginx/ccm.conf with only its listen ports (on loopback, IPv4), the portal's
    port and the certificate paths changed. Its pid, logs and temporary files are set
    outside it, by the main file tests/servers.py wraps it in."""
    text = (DEPLOY / "nginx" / "ccm.conf").read_text()
    for old, new in [
        ("listen 80;", f"listen {LOOPBACK}:{http_port};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl http2;", f"listen {LOOPBACK}:{https_port} ssl http2;"),
        ("listen [::]:443 ssl http2;", ""),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};"),
        ("/etc/letsencrypt/live/mail.example.com/fullchain.pem", str(certificate)),
        ("/etc/letsencrypt/live/mail.example.com/privkey.pem", str(certificate)),
    ]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_signing_in_through_the_nginx_site_over_https(app, make_tenant, make_user, tmp_path):
    if not NGINX.exists():
        pytest.skip(f"{NGINX} is missing: apt-get install nginx-light")
    make_user(make_tenant(), "alice@acme.test", role="internal")
    ca = ThrowawayCA()
    certificate = ca.server_files("127.0.0.1", tmp_path)
    http_port, https_port = free_port(), free_port()
    settings = {"CCM_DATABASE_URL": app.config["DATABASE_URL"], "CCM_SECRET_KEY": "deploy-test",
                "CCM_BASE_URL": "https://127.0.0.1", "CCM_PROXY_HOPS": "1"}
    with CcmWeb(tmp_path, settings) as web, NginxSite(
            tmp_path / "nginx", site_for_test(http_port=http_port, https_port=https_port,
                                              upstream=web.port, certificate=certificate),
            https_port):
        browser = Visitor(https_port, "127.0.0.2", tls=ca.client_context())
        page = browser.request("GET", "/sign-in")
        assert page.status == 200 and page.headers["Server"] == "nginx"  # no version
        signed_in = browser.submit("/sign-in", {"email": "alice@acme.test", "password": PASSWORD},
                                   {"Referer": f"https://127.0.0.1:{https_port}/sign-in"})
        assert signed_in.status == 302, signed_in.text
        assert signed_in.headers["Location"].endswith("/inbox/")
        assert any(name.startswith("__Host-") for name in browser.cookies)
        inbox = browser.request("GET", "/inbox/")
        assert inbox.status == 200 and "alice@acme.test" in inbox.text
        assert inbox.headers["Strict-Transport-Security"].startswith("max-age=")
        assert browser.request("GET", "/readyz").text == "ok\n"

        plain = Visitor(http_port, "127.0.0.2").request("GET", "/sign-in?any=1")
        assert plain.status == 301
        assert plain.headers["Location"] == "https://127.0.0.1/sign-in?any=1"

        # compose.yaml's healthcheck of the portal, run against this one
        check = compose()["services"]["web"]["healthcheck"]["test"]
        assert check[:2] == ["CMD", "python"]
        script = check[3].replace(":8000/", f":{web.port}/")
        assert subprocess.run([sys.executable, check[2], script], timeout=30).returncode == 0
    db.session.rollback()
    assert db.session.scalars(select(AccessEvent.client_address)
                              .where(AccessEvent.kind == "sign_in")).all() == ["127.0.0.2"]


def test_nginx_takes_every_upload_ccm_takes_so_ccm_answers_larger_ones(tmp_path):
    text = (DEPLOY / "nginx" / "ccm.conf").read_text()
    [megabytes] = re.findall(r"^\s*client_max_body_size (\d+)m;", text, re.MULTILINE)
    ccm_limit = config.load(str(tmp_path), {})["MAX_CONTENT_LENGTH"]
    assert ccm_limit <= int(megabytes) * 2**20 < ccm_limit + 2**20
    assert "server_tokens off;" in text
    for header in ("X-Forwarded-For $proxy_add_x_forwarded_for",
                   "X-Forwarded-Proto $scheme", "X-Forwarded-Host $http_host"):
        assert f"proxy_set_header {header};" in text  # as README's "Behind a reverse proxy"
        assert header in (ROOT / "README.md").read_text()


# --- systemd -------------------------------------------------------------------------------


def units() -> dict[str, configparser.ConfigParser]:
    found = {}
    for path in sorted(UNITS.iterdir()):
        unit = configparser.ConfigParser(interpolation=None, strict=True)
        unit.optionxform = str  # systemd's keys are case-sensitive
        unit.read(path)
        found[path.name] = unit
    return found


HARDENING = {"User": "ccm", "Group": "ccm", "NoNewPrivileges": "yes",
             "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
             "ReadWritePaths": "/var/lib/ccm", "EnvironmentFile": "/etc/ccm/ccm.env",
             "Environment": "CCM_INSTANCE_PATH=/var/lib/ccm", "Restart": "on-failure",
             "KillSignal": "SIGTERM", "TimeoutStopSec": "45", "UMask": "0077"}


def test_units_run_real_commands_hardened(commands):
    found = units()
    assert set(found) == {"ccm-web.service", "ccm-smtp.service", "ccm-worker.service",
                          "ccm-serve.service", "ccm.target"}
    target = found.pop("ccm.target")
    assert target["Unit"]["Wants"].split() == ["ccm-web.service", "ccm-smtp.service",
                                              "ccm-worker.service"]
    for name, unit in found.items():
        service = unit["Service"]
        for key, value in HARDENING.items():
            assert service.get(key) == value, (name, key)
        argv = shlex.split(service["ExecStart"])
        assert argv[0] == INSTALLED_CCM and argv[1] == name.removeprefix("ccm-").split(".")[0]
        check_ccm_command(commands, argv)
        listens_on_25 = name in ("ccm-smtp.service", "ccm-serve.service")
        assert service["CapabilityBoundingSet"] == (
            "CAP_NET_BIND_SERVICE" if listens_on_25 else "")
        wanted = "multi-user.target" if name == "ccm-serve.service" else "ccm.target"
        assert unit["Install"]["WantedBy"] == wanted


def test_systemd_analyze_verify_finds_nothing(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for path in UNITS.iterdir():  # the same units, with the command where it is here
        (tmp_path / path.name).write_text(path.read_text().replace(INSTALLED_CCM, str(CCM)))
    done = subprocess.run([analyze, "verify", *sorted(map(str, tmp_path.iterdir()))],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")


# --- Docker ---------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in lines if line and not line.startswith("#")]


def test_dockerfile_builds_from_what_the_project_has(commands):
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for instruction, arguments in steps:
        if instruction == "COPY":
            *sources, _target = arguments.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert f"!{source.rstrip('/')}" in {line.rstrip("/") for line in ignored}
    [install] = [a for i, a in steps if i == "RUN" and "pip install" in a]
    extras = re.search(r'"\.\[([a-z,]+)\]"', install).group(1).split(",")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(extras) <= set(pyproject["project"]["optional-dependencies"]) - {"test"}
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1] not in ("root", "0")
    cmd = [(i, a) for i, a in steps if i in ("CMD", "ENTRYPOINT")]
    assert cmd[-1][0] == "CMD" and steps.index(cmd[-1]) > steps.index(("USER", users[-1]))
    check_ccm_command(commands, json.loads(cmd[-1][1]))
    environment = dict(pair.split("=", 1) for i, a in steps if i == "ENV"
                       for pair in a.split())
    assert all(documented(name) for name in environment if name.startswith("CCM_"))
    exposed = {int(port) for i, a in steps if i == "EXPOSE" for port in a.split()}
    assert exposed == {int(environment[name].rpartition(":")[2])
                       for name in ("CCM_HTTP_LISTEN", "CCM_SMTP_LISTEN")}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def with_sample_values(value: str) -> str:
    """Compose's ``${VAR:-default}`` as its default, ``${VAR:?why}`` as a sample."""
    value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
    return re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "sample", value)


def test_compose_runs_real_commands_with_settings_ccm_accepts(commands, tmp_path):
    services = compose()["services"]
    assert set(services) == {"db", "redis", "web", "smtp", "worker"}
    for name in ("db", "redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    for name in ("web", "smtp", "worker"):
        service = services[name]
        assert service["command"][1] == name
        check_ccm_command(commands, service["command"])
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        assert service["depends_on"] == {"db": {"condition": "service_healthy"},
                                         "redis": {"condition": "service_healthy"}}
        environment = {key: with_sample_values(value)
                       for key, value in service["environment"].items()}
        assert all(documented(key) for key in environment), environment
        config.load(str(tmp_path), environment, checks=config_checks.SETTING_CHECKS)
    web = services["web"]
    port = web["environment"]["CCM_HTTP_LISTEN"].rpartition(":")[2]
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(web["healthcheck"]["test"])
    for name in ("smtp", "worker"):  # processes without HTTP: `ccm status` asks them
        check = services[name]["healthcheck"]["test"]
        assert check == ["CMD", "ccm", "status", name]
        check_ccm_command(commands, check[1:])
    # The secrets come from the environment, never the file.
    text = (DEPLOY / "compose.yaml").read_text()
    for secret in ("CCM_SECRET_KEY", "POSTGRES_PASSWORD"):
        assert f"${{{secret}:?" in text


def test_operations_guide_is_linked_from_the_readme():
    assert "docs/operations.md" in (ROOT / "README.md").read_text()
    guide = (ROOT / "docs" / "operations.md").read_text()
    for heading in ("## Processes and sizing", "## Health", "## Backup and restore",
                    "## Upgrades", "## Logs", "## What to monitor", "## Metrics"):
        assert heading in guide, heading
