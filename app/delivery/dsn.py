"""Delivery status notifications (RFC 3464) telling a sender their message bounced."""

from __future__ import annotations

from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid

from app.delivery import mail_templates, queue
from app.mail import mime
from app.models import Recipient


def queue_failure_report(recipient: Recipient, reply: str) -> None:
    """Queue a DSN for a recipient that could not be reached; never to the null sender."""
    message = recipient.message
    if not message.mail_from:
        return
    report = failure_report(recipient, reply)
    route = "internal" if message.tenant.is_internal(message.mail_from) else "external"
    queue.queue(report, tenant=message.tenant, kind="dsn", route=route)


def failure_report(recipient: Recipient, reply: str) -> MIMEMultipart:
    message = recipient.message
    host = mail_templates.portal_host()
    status = _status_code(reply)
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{host}>"
    report["To"] = message.mail_from
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = formatdate()
    report["Message-ID"] = make_msgid(domain=host)
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834: an answer to a message
    report.attach(MIMEText(
        f"Your message could not be delivered to {recipient.address}.\n\n"
        f"Subject: {message.subject}\n"
        f"Reason:  {reply}\n\n"
        "The message was not delivered and will not be tried again.\n",
        "plain", "utf-8",
    ))
    fields = MIMENonMultipart("message", "delivery-status")
    # One block about the message, then one per recipient (RFC 3464 section 2.1).
    fields.set_payload([
        _block({"Reporting-MTA": f"dns; {host}",
                "Arrival-Date": formatdate(message.received_at.timestamp())}),
        _block({"Final-Recipient": f"rfc822; {recipient.address}", "Action": "failed",
                "Status": status, "Diagnostic-Code": f"smtp; {' '.join(reply.split())}"}),
    ])
    report.attach(fields)
    if message.raw is not None:
        headers = MIMENonMultipart("text", "rfc822-headers")
        head = mime.header_block(message.raw)
        headers.set_payload(head.decode("ascii", errors="replace"))
        report.attach(headers)
    return report


def _block(fields: dict[str, str]) -> EmailMessage:
    block = EmailMessage()
    for name, value in fields.items():
        block[name] = value
    return block


def _status_code(reply: str) -> str:
    """The enhanced status code in ``reply`` (e.g. 5.1.1), or the generic permanent one."""
    for word in reply.replace(":", " ").split():
        parts = word.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and parts[0] in "245":
            return "5" + word[1:] if word[0] != "5" else word
    return "5.0.0"
