"""Delivery status notifications: the report telling a sender their message bounced.

RFC 3464's multipart/report, or RFC 6533's internationalised one
(``message/global-delivery-status`` and ``message/global-headers``) when the original's
headers hold 8-bit text or an address or the remote's answer is not ASCII. A report is
built for any message that was received, whatever its bytes: the original's header
section is returned as text made fit for mail (every line ended by CRLF, control
characters replaced, no line over SMTP's limit, the whole bounded), and never parsed, so
nothing in it can stop the report. Fields taken from outside (addresses, the remote's
answer) are put on one line each and folded, so none can add a field of its own.
"""

from __future__ import annotations

import re
from email.generator import BytesGenerator
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP, SMTPUTF8
from email.utils import formataddr, formatdate, make_msgid
from io import BytesIO

from app.config import settings
from app.delivery import mail_templates, queue
from app.delivery.destinations import RemoteAnswer
from app.mail import mime
from app.models import Recipient

#: the original's header section is returned up to this many bytes, cut at a line's end
#: (Postfix returns at most 50,000 bytes of an original, its bounce_size_limit)
RETURNED_HEADERS_LIMIT = 50_000
#: the longest line SMTP carries, its CRLF not counted (RFC 5321 4.5.3.1.6)
LINE_LIMIT = 998
#: fields are folded at spaces to lines of about this length
FOLD_AT = 78

_LINE_END = re.compile(r"\r\n|\r|\n")
#: C0 and C1 controls but TAB, and the characters Python's str.splitlines splits at
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def queue_failure_report(recipient: Recipient, reply: str,
                         remote: RemoteAnswer | None = None) -> None:
    """Queue a DSN for a recipient that could not be reached; never to the null sender.
    ``remote`` is the answer of the server that refused the message, if one did."""
    message = recipient.message
    if not message.mail_from:
        return
    report = failure_report(recipient, reply, remote)
    route = "internal" if message.tenant.is_internal(message.mail_from) else "external"
    queue.queue(as_bytes(report), tenant=message.tenant, kind="dsn", route=route,
                to=message.mail_from)


def failure_report(recipient: Recipient, reply: str,
                   remote: RemoteAnswer | None = None) -> EmailMessage:
    """The report for ``recipient``: a human explanation, the delivery status fields and
    the original's headers."""
    message = recipient.message
    head = mime.header_block(message.raw or b"")
    diagnostic = remote.reply if remote else reply
    international = not (head.isascii() and message.mail_from.isascii()
                         and recipient.address.isascii() and diagnostic.isascii())
    report = EmailMessage(policy=SMTPUTF8 if international else SMTP)
    report["From"] = formataddr(("Mail Delivery System",
                                 mail_templates.sender_address(message.tenant)))
    report["To"] = _one_line(message.mail_from, international)
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = formatdate()
    report["Message-ID"] = make_msgid(domain=mail_templates.portal_host())
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834: an answer to a message
    explanation = _explanation(recipient, reply, remote)
    # 7-bit, as a report of an ASCII message must be (the original's subject may not be)
    report.set_content(explanation, cte=None if explanation.isascii() else "quoted-printable")
    report.make_mixed()
    report.set_type("multipart/report")
    global_ = "global-" if international else ""
    report.set_param("report-type", f"{global_}delivery-status")
    report.attach(_part(f"message/{global_}delivery-status",
                        _status_fields(recipient, reply, remote, international)))
    if returned := _returned_headers(head, international):
        report.attach(_part("message/global-headers" if international
                            else "text/rfc822-headers", returned))
    return report


def as_bytes(report: EmailMessage) -> bytes:
    """The report as sent, its parts' text written as it was built."""
    out = BytesIO()
    _ReportGenerator(out, policy=report.policy).flatten(report)
    return out.getvalue()


class _ReportGenerator(BytesGenerator):
    """The email package's writer, writing a message/* part whose payload is text as it
    is: it writes such a part only if it is ASCII, and a delivery-status one only as a
    list of parsed blocks. RFC 6533 wants 8-bit UTF-8 in the global parts."""

    def _encode(self, s: str) -> bytes:
        return s.encode("ascii", "surrogateescape")

    def _handle_message_delivery_status(self, msg) -> None:
        self._handle_message(msg)  # a report's blocks are text already


def _part(content_type: str, text: str) -> MIMEPart:
    """A report part holding ``text`` (its lines ended by CRLF) as 8-bit UTF-8, or
    7-bit when it is ASCII."""
    part = MIMEPart()
    part["Content-Type"] = content_type
    part["Content-Transfer-Encoding"] = "7bit" if text.isascii() else "8bit"
    part.set_payload(text.encode().decode("ascii", "surrogateescape"))
    return part


def _explanation(recipient: Recipient, reply: str, remote: RemoteAnswer | None) -> str:
    message = recipient.message
    subject = _one_line(message.subject or "", True)[:200]
    reason = f"{remote.host} said: {remote.reply}" if remote else reply
    return (f"Your message could not be delivered to {_one_line(recipient.address, True)}"
            f".\n\nSubject: {subject}\nReason:  {_one_line(reason, True)}\n\n"
            "The message was not delivered and will not be tried again.\n")


def _status_fields(recipient: Recipient, reply: str, remote: RemoteAnswer | None,
                   international: bool) -> str:
    """The per-message fields, a blank line, the recipient's fields (RFC 3464 2.1)."""
    message = recipient.message
    reporting = settings().helo_name or mail_templates.portal_host()
    address = _one_line(recipient.address, international)
    per_message = [("Reporting-MTA", f"dns; {reporting}"),
                   ("Arrival-Date", formatdate(message.received_at.timestamp()))]
    per_recipient = [
        ("Final-Recipient", f"{'rfc822' if address.isascii() else 'utf-8'}; {address}"),
        ("Action", "failed"),
        ("Status", _status_code(remote.reply if remote else reply)),
    ]
    if remote:
        per_recipient += [("Remote-MTA", f"dns; {_one_line(remote.host, international)}"),
                          ("Diagnostic-Code", f"smtp; {_one_line(remote.reply, international)}")]
    else:  # our own reason: a type of our own, as Postfix's "X-Postfix"
        per_recipient.append(("Diagnostic-Code", f"X-CCM; {_one_line(reply, international)}"))
    per_recipient.append(("Last-Attempt-Date", formatdate()))
    return "".join(_field(name, value) for name, value in per_message) + "\r\n" + \
        "".join(_field(name, value) for name, value in per_recipient)


def _returned_headers(head: bytes, international: bool) -> str:
    """The original's header section as text fit for mail, or "" when it has none."""
    if len(head) > RETURNED_HEADERS_LIMIT:
        cut = max(head.rfind(b"\n", 0, RETURNED_HEADERS_LIMIT),
                  head.rfind(b"\r", 0, RETURNED_HEADERS_LIMIT))
        head = head[:cut if cut > 0 else RETURNED_HEADERS_LIMIT]
    text = head.decode("utf-8" if international else "ascii", errors="replace")
    lines = []
    for line in _LINE_END.split(text):
        if not line:  # the end of the headers for a reader taking a bare CR for a line end
            break
        lines.append(_cut(_printable(line, international)) + "\r\n")
    return "".join(lines)


def _field(name: str, value: str) -> str:
    """``Name: value``, folded at spaces (RFC 5322 2.2.3), each line within the limit."""
    lines, line = [], f"{name}:"
    for word in value.split(" "):
        if line != f"{name}:" and len(line) + 1 + len(word) > FOLD_AT:
            lines.append(line)
            line = ""
        line += f" {word}"
    lines.append(line)
    return "".join(_cut(line) + "\r\n" for line in lines)


def _one_line(text: str, international: bool) -> str:
    """``text`` on one line, its runs of white space single spaces."""
    return " ".join(_printable(text, international).split())


def _printable(text: str, international: bool) -> str:
    """``text`` with controls (and, for an ASCII report, all that is not ASCII) replaced;
    what cannot be written as UTF-8 (bytes kept as surrogates) too."""
    text = _CONTROL.sub("\ufffd", text.encode("utf-8", "replace").decode())
    return text if international else text.encode("ascii", "replace").decode()


def _cut(line: str) -> str:
    """``line`` within SMTP's limit on a line's bytes, cut at a character's end."""
    return line.encode()[:LINE_LIMIT].decode("utf-8", "ignore")


def _status_code(reply: str) -> str:
    """The enhanced status code in ``reply`` (e.g. 5.1.1, RFC 3463) as a permanent
    one, else the generic permanent one."""
    for word in reply.replace(":", " ").split():
        parts = word.split(".")
        if (len(parts) == 3 and parts[0] in ("2", "4", "5")
                and all(p.isdigit() and len(p) <= 3 for p in parts[1:])):
            return f"5.{parts[1]}.{parts[2]}"
    return "5.0.0"
