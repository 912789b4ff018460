"""The composer's refusals in the reader's language.

The domain words a refusal in English with ``%(name)s`` holes (app/domain/composing.py,
replies.py); it is translated here, where it is shown, from the wording itself, which
:data:`COMPOSE_REFUSALS` marks for the catalogs. tests/test_i18n.py fails when the domain
gives one this list lacks.
"""

from flask_babel import format_number
from flask_babel import gettext as _

from app.domain.composing import ComposeRefused
from app.web.languages import N_

COMPOSE_REFUSALS = (
    N_("%(label)s holds characters that are not text (a control character such as NUL, "
       "or bytes that are not UTF-8). Remove them and try again."),
    N_("%(label)s is too long: %(count)s characters, the most is %(most)s."),
    N_("A message can go to at most %(most)s recipients; this one lists %(count)s. "
       "Send it as several messages."),
    N_("An address can be at most %(most)s characters; one has %(count)s: %(start)s…"),
    N_("Not an email address: %(addresses)s"),
    N_("Choose a CCM mode from the list."),
    N_("Add at least one recipient."),
    N_("The message with its attachments is larger than this portal accepts. Remove an "
       "attachment and try again."),
    N_("You already keep %(most)s drafts, the most there is room for. Send or delete one "
       "you no longer need (under Drafts), and this one is saved as you type."),
    N_("A reply can only go to the people on the message; %(addresses)s is not one of "
       "them."),
    N_("Choose at least one person to reply to."),
)
#: the composer's field names a refusal may hold (``label``): its form's labels
FIELD_LABELS = (N_("To"), N_("Cc"), N_("Subject"), N_("Message"))


def said(refused: ComposeRefused) -> str:
    """``refused`` in the request's language, its numbers written as that language writes
    them and the field it names called as its form labels it."""
    values = {name: format_number(value) if isinstance(value, int)
              else _(value) if name == "label" else value
              for name, value in refused.values.items()}
    return _(refused.text, **values)
