"""A message's conversation as one user may see it: the messages of its thread that
reached them (their own CCM copies) and the ones they sent themselves.

The thread (app/mail/threads.py) comes from headers the sender writes, so it only
groups: a message joins the list only through this user's own copy of it or their own
sending, the same two ways the inbox and Sent reach a message. Another participant's
copy, another tenant's message, or anything else in the thread is never read.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, exists, func, literal, or_, select, tuple_

from app.domain import mailbox, reading
from app.extensions import db
from app.models import Message, Recipient, Route, User

#: the most messages a conversation shows on either side of one message
LIMIT = 50


@dataclass
class Turn:
    """One message of the conversation: the user's copy of it, or None when they sent it."""

    message: Message
    copy: Recipient | None

    @property
    def own(self) -> bool:
        return self.copy is None

    @property
    def fate(self) -> mailbox.Fate | None:
        """Withdrawn or expired for this user; a message they sent expires when purged."""
        if self.copy is not None:
            return mailbox.fate_of(self.copy)
        purged = self.message.purged_at
        return None if purged is None else mailbox.Fate(False, purged)

    def text(self) -> str:
        """The body as text; HTML (the portal's rich replies too) as its text part says it,
        its quote in "> " lines."""
        return reading.body_text(reading.read_message(self.message))

    def said(self) -> tuple[str, str]:
        """(what this message says, the quote it ends with): the conversation shows the
        quote folded, since the messages it quotes are on the same page."""
        return split_quote(self.text())


def split_quote(text: str) -> tuple[str, str]:
    """``text`` less its trailing quote ("On …, … wrote:" and "> " lines, as replies.quoted
    and mail programs write it, in any language: the line before the "> " lines ends with
    a colon), and that quote; ("text", "") when it ends otherwise."""
    lines = text.rstrip().splitlines()
    start = len(lines)
    while start > 0 and (lines[start - 1].startswith(">") or not lines[start - 1].strip()):
        start -= 1
    if start == len(lines) or start == 0 or not lines[start - 1].rstrip().endswith(":"):
        return text.strip(), ""
    return "\n".join(lines[:start - 1]).strip(), "\n".join(lines[start - 1:])


def around(user: User, message: Message) -> tuple[list[Turn], list[Turn]]:
    """(earlier, later): the other messages of ``message``'s thread this user may see,
    each in the order they arrived; at most LIMIT on either side, the nearest ones."""
    if not message.thread:
        return [], []
    own_copy = and_(Recipient.message_id == Message.id, Recipient.user_id == user.id,
                    Recipient.route == Route.CCM)
    visible = (select(Message).where(
        Message.tenant_id == user.tenant_id, Message.thread == message.thread,
        Message.id != message.id,
        or_(exists().where(own_copy), func.lower(Message.mail_from) == user.email)))
    position = tuple_(Message.received_at, Message.id)
    here = tuple_(literal(message.received_at), literal(message.id))
    earlier = list(db.session.scalars(
        visible.where(position < here)
        .order_by(Message.received_at.desc(), Message.id.desc()).limit(LIMIT)))[::-1]
    later = list(db.session.scalars(
        visible.where(position > here)
        .order_by(Message.received_at, Message.id).limit(LIMIT)))
    copies = {r.message_id: r for r in db.session.scalars(select(Recipient).where(
        Recipient.message_id.in_([m.id for m in earlier + later]),
        Recipient.user_id == user.id, Recipient.route == Route.CCM))}
    return ([Turn(m, copies.get(m.id)) for m in earlier],
            [Turn(m, copies.get(m.id)) for m in later])
