"""Mail leaving the gateway: generated mail is queued in the unit of work and sent after commit.

A message queued while a transaction rolls back is never sent. Targets (CCM_OUTBOUND):
``maildir:PATH`` writes each message into a Maildir; ``smtp://host:port`` hands it to
a smart host.
"""

from __future__ import annotations

import logging
import mailbox
import smtplib
from email.message import EmailMessage
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from .extensions import db

log = logging.getLogger(__name__)

_PENDING = "ccm_outgoing_mail"


def queue(message: EmailMessage) -> None:
    """Send ``message`` once the current transaction commits."""
    db.session.info.setdefault(_PENDING, []).append(message)


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    for message in session.info.pop(_PENDING, []):
        try:
            deliver(message, current_app.config["OUTBOUND"])
        except (OSError, smtplib.SMTPException):
            log.exception("could not send %s to %s", message["Subject"], message["To"])


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def deliver(message: EmailMessage, target: str) -> None:
    """Hand ``message`` to ``target`` now."""
    kind, _, rest = target.partition(":")
    if kind == "maildir":
        mailbox.Maildir(rest, create=True).add(message)
    elif kind == "smtp":
        address = urlsplit(target)
        with smtplib.SMTP(address.hostname, address.port or 25, timeout=30) as client:
            client.send_message(message)
    else:
        raise ValueError(f"unsupported outbound target {target!r}")
