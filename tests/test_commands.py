"""The ``ccm`` command as an operator runs it: a real process, a real port."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import select

from app.domain import accounts
from app.extensions import db
from app.models import User

CCM = Path(sys.executable).with_name("ccm")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_migrates_creates_an_administrator_and_answers(tmp_path):
    port = free_port()
    env = {**os.environ, "CCM_INSTANCE_PATH": str(tmp_path),
           "CCM_HTTP_LISTEN": f"127.0.0.1:{port}",
           "CCM_SMTP_LISTEN": f"127.0.0.1:{free_port()}"}
    env.pop("CCM_DATABASE_URL", None)
    process = subprocess.Popen([str(CCM), "serve"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        output = ""
        deadline = time.monotonic() + 30
        while "portal listening on" not in output and time.monotonic() < deadline:
            output += process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in output
        assert re.search(r"password: \S{20}", output)
        assert "SMTP ingress listening on" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sign-in", timeout=10) as answer:
            assert answer.status == 200
            assert answer.headers["Server"] == "ccm"  # waitress, not the development server
            assert "Sign in" in answer.read().decode()
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
    assert (tmp_path / "ccm.sqlite3").exists()
    assert (tmp_path / "secret_key").exists()


def test_first_administrator_is_created_once(app):
    user, password = accounts.create_first_administrator()
    db.session.commit()
    assert user.role == "admin" and user.must_change_password
    assert accounts.passwords.verify_password(user.password_hash, password)
    assert accounts.create_first_administrator() is None
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 1


def test_db_upgrade_command(runner):
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output


def test_a_setting_that_cannot_be_read_stops_ccm_with_one_line_naming_it(tmp_path):
    """Every command, with each kind of unreadable setting: status 2, the variable named,
    no traceback."""
    bad = [("CCM_RELAY_NETWORKS", "10.0.0.300/8"), ("CCM_MX_ALLOWED_NETWORKS", "garbage"),
           ("CCM_PROXY_NETWORKS", "127.0.0.1/33"), ("CCM_SMTP_TIMEOUT", "sixty"),
           ("CCM_DELIVERY_THREADS", "4.5"), ("CCM_PROXY_HOPS", "one")]
    for command in (["web"], ["jobs"]):
        for variable, value in bad:
            env = {**os.environ, "CCM_INSTANCE_PATH": str(tmp_path), variable: value}
            done = subprocess.run([str(CCM), *command], env=env, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 2, (variable, done.stderr)
            assert done.stderr.startswith(f"ccm: {variable}: "), done.stderr
            assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
