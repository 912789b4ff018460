"""Logs an operator can follow a message by: one line an event, with the time and the
process id, as text or as JSON (CCM_LOG_FORMAT), from the real ``ccm`` commands."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from servers import CCM, ccm_environment

ACME = """\
tenants:
  - slug: acme
    name: Acme Corp
    domains: [acme.test]
    users:
      - {email: alice@acme.test, role: internal}
"""

MESSAGE = b"""\
From: alice@acme.test\r
To: pat@partner.test\r
Subject: Figures\r
\r
Attached.\r
"""


def ccm(instance: Path, *args: str, **environ: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(CCM), *args], env=ccm_environment(instance, **environ),
                          capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def a_message_sent(tmp_path: Path, **environ: str) -> str:
    """What ``ccm`` logs while a message is taken and delivered (to the maildir)."""
    (tmp_path / "acme.yaml").write_text(ACME)
    (tmp_path / "message.eml").write_bytes(MESSAGE)
    ccm(tmp_path, "config", "import", str(tmp_path / "acme.yaml"))
    ccm(tmp_path, "send", str(tmp_path / "message.eml"), "--mail-from", "alice@acme.test",
        "--rcpt", "pat@partner.test", **environ)
    return ccm(tmp_path, "jobs", "run", "deliver", **environ).stderr


def test_text_lines_carry_the_time_the_process_and_the_message(tmp_path):
    logged = a_message_sent(tmp_path).splitlines()
    sent = [line for line in logged if "status=sent" in line]
    assert len(sent) == 1, logged
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ INFO app\.delivery\.runner: "
                    r"message \S+ item \d+ \(delivery\) to=<pat@partner\.test> tries=1 "
                    r"status=sent \(Written to the outbox \(maildir\)\)", sent[0]), sent[0]
    # the people's event names no path; the operator's log does
    assert any(f"to=<pat@partner.test> written to the maildir {tmp_path / 'outbox'}" in line
               for line in logged), logged


def test_json_lines_are_objects_with_the_messages_id_as_a_field(tmp_path):
    logged = a_message_sent(tmp_path, CCM_LOG_FORMAT="json").splitlines()
    entries = [json.loads(line) for line in logged]  # every line is one JSON object
    (sent,) = [e for e in entries if "status=sent" in e["message"]]
    assert sent["level"] == "INFO" and sent["logger"] == "app.delivery.runner"
    assert isinstance(sent["pid"], int) and re.match(r"\d{4}-\d\d-\d\dT", sent["time"])
    assert sent["message_id"] in sent["message"] and isinstance(sent["item_id"], int)


def test_the_level_is_a_setting(tmp_path):
    assert "status=sent" not in a_message_sent(tmp_path, CCM_LOG_LEVEL="WARNING")


def test_what_mail_brings_cannot_forge_a_text_line():
    """A remote reply or an address with CR LF, ESC or a bidi override stays on its line,
    written as escapes; the traceback after it keeps its own lines."""
    import logging

    from app.logs import TextFormatter

    for hostile in ("450 busy\r\n2026-12-06 09:00:00,000 1 INFO app: status=sent",
                    "to=<a\nb@x.test>", "\x1b[2Jcleared", "ok\u202eevil", "tab\there",
                    "nul\x00 and del\x7f and c1\x85"):
        record = logging.LogRecord("app.delivery.runner", logging.INFO, __file__, 1,
                                   "item 7 status=deferred (%s)", (hostile,), None)
        line = TextFormatter().format(record)
        assert "\n" not in line and "\r" not in line and "\t" not in line
        assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or c == "\u202e"
                       for c in line), line
        assert line.endswith(")") and "status=deferred (" in line
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        record = logging.LogRecord("app", logging.ERROR, __file__, 1, "failed\nforged",
                                   (), sys.exc_info())
    written = TextFormatter().format(record)
    assert written.splitlines()[0].endswith("failed\\nforged")
    assert "Traceback (most recent call last):" in written.splitlines()[1]
