"""How every CCM process logs: one line an event, with the time and the process id, as
text an operator reads or JSON a log shipper reads (CCM_LOG_FORMAT).

Mail events are logged at INFO as Postfix logs them to its maillog, one line each, and
carry the ids that tie them together (``extra={"message_id": ..., "queue_id": ...}``):
``grep`` for a message's id finds its whole story across processes. In JSON those ids are
fields of their own.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from app.mail.terminal import one_line

#: the ids a mail event may carry, shown as fields in JSON
FIELDS = ("message_id", "queue_id", "item_id", "job")

TEXT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), pid, level, logger, message, the
    event's ids, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "pid": record.process, "level": record.levelname, "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name) for name in FIELDS
                      if getattr(record, name, None) is not None})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT`, with the message kept on its line: what mail brings (an
    address, a remote server's reply) has its control characters written as escapes, so
    no one can add a line that looks like the gateway's own. A traceback, added after,
    keeps its lines."""

    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        said = record.message
        record.message = one_line(said)
        try:
            return super().formatMessage(record)
        finally:
            record.message = said


def configure(log_format: str = "text", level: str = "INFO") -> None:
    """Send every logger's records at ``level`` and above to standard error, in
    ``log_format``; once per process, replacing what was there (a second call too)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that talk a lot at INFO about their own workings, not about mail.
    for chatty in ("apscheduler", "waitress.queue", "mail.log"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
