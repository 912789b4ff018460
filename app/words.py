"""Words the domain says to people, in English, with what varies kept apart so that a
page can say them in its reader's language (``say`` in app/web/languages.py).

The domain knows nothing of Flask or of languages: it marks each sentence with ``N_``
(what `pybabel extract` looks for) and gives the values by name. A :class:`Words` is the
English sentence itself, so logs, the audit log, the command line and stored rows keep
reading it as they did.
"""

from __future__ import annotations


def N_(text: str) -> str:  # the name gettext's tools look for
    """Mark ``text`` for translation where it is defined; translate it where it is shown."""
    return text


class Words(str):
    """An English sentence (``template % values``) that remembers its template and values.

    A value may be words itself (a field's label), and a whole number is written as the
    reader's language writes numbers (here with English thousands separators: 1,200).
    """

    template: str
    values: dict

    def __new__(cls, template: str, **values) -> Words:
        words = super().__new__(cls, template % {
            name: f"{value:,}" if whole_number(value) else value for name, value in values.items()
        } if values else template)
        words.template, words.values = template, values
        return words


def whole_number(value) -> bool:
    """Whether ``value`` is a whole number to write as a number (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)
