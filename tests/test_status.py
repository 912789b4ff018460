"""`ccm status`: whether the database answers, the SMTP ingress greets and a worker
delivers, asked of real processes as a process manager's health check asks."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

from servers import CCM, LOOPBACK, ccm_environment, free_port, wait_for_port


def environment(instance: Path, **settings: str) -> dict:
    return ccm_environment(instance, **settings)


def status(env: dict, *parts: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CCM), "status", *parts], env=env, capture_output=True,
                          text=True, timeout=60)


def test_each_part_answers_for_itself(tmp_path):
    port = free_port()
    env = environment(tmp_path, CCM_SMTP_LISTEN=f"{LOOPBACK}:{port}")
    subprocess.run([str(CCM), "db", "upgrade"], env=env, check=True, capture_output=True)

    nothing_runs = status(env)
    assert nothing_runs.returncode == 1
    lines = nothing_runs.stdout.splitlines()
    assert lines[0] == "database: ok"
    assert lines[1].startswith(f"smtp: does not answer at {LOOPBACK}:{port}")
    assert lines[2] == "worker: no worker has delivered yet"
    assert status(env, "database").returncode == 0

    log = tmp_path / "smtp.log"
    with log.open("wb") as output:
        smtp = subprocess.Popen([str(CCM), "smtp"], env=env, stdout=output,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, smtp, log)
        subprocess.run([str(CCM), "jobs", "run", "deliver"], env=env, check=True,
                       capture_output=True)
        well = status(env)
        assert (well.returncode, well.stdout) == (
            0, "database: ok\nsmtp: ok\nworker: ok\n"), well.stderr
        assert status(env, "smtp", "worker").stdout == "smtp: ok\nworker: ok\n"
    finally:
        smtp.terminate()
        smtp.wait(timeout=60)
    assert status(env, "smtp").returncode == 1


def test_a_listener_that_does_not_greet_is_not_the_ingress(tmp_path):
    with socket.create_server((LOOPBACK, 0)) as mute:
        port = mute.getsockname()[1]
        accepted = []
        threading.Thread(target=lambda: accepted.append(mute.accept()), daemon=True).start()
        env = environment(tmp_path, CCM_SMTP_LISTEN=f"{LOOPBACK}:{port}")
        answer = status(env, "smtp")
        for connection, _ in accepted:
            connection.close()
    assert answer.returncode == 1 and answer.stdout.startswith("smtp: does not answer")


def test_an_unknown_part_is_a_usage_error(tmp_path):
    answer = status(environment(tmp_path), "portal")
    assert answer.returncode == 2 and "portal" in answer.stderr
