"""The buttons' words, in every language the portal speaks.

English is written here; the other languages come from the portal's own catalogs
(app/translations, as its notifications read them: app/delivery/mail_templates.py), so
the buttons say what the portal's pages say of them. The words only the buttons use are
marked ``N_`` for ``pybabel extract`` and translated at the end of each catalog.
"""

from __future__ import annotations

import functools

from app.delivery import mail_templates
from app.words import N_

#: the portal's languages (app/web/languages.py), English first: the buttons' default
LANGUAGES = ("en", "de", "fr", "es", "ar")
DEFAULT = "en"

#: every text of the buttons, by its key (the key of _locales/<language>/messages.json
#: in Thunderbird, of the info bar's table in Outlook's script) → its English
TEXTS = {
    "name": N_("Send Secure"),
    "description": N_("Send Secure: marks the message you are writing for delivery "
                      "through your organisation's secure portal."),
    "lead": N_("Send this message securely, through your organisation's portal:"),
    # the three choices: the portal's own names of the modes translate the first two
    "all": "All recipients",
    "external": "External recipients only",
    "off": N_("Off"),
    "menuTip": N_("Send this message through your organisation's secure portal. You can "
                  "change your choice until you send."),
    "allTip": N_("Every recipient, colleagues too, reads this message in the secure "
                 "portal."),
    "externalTip": N_("Recipients outside your organisation read this message in the "
                      "secure portal; colleagues get it as usual."),
    "offTip": N_("This message goes as usual, unless a policy of your organisation sends "
                 "it securely."),
    "noticeAll": N_("Send Secure: all recipients get this message through the secure "
                    "portal."),
    "noticeExternal": N_("Send Secure: external recipients get this message through the "
                         "secure portal; colleagues get it as usual."),
    "noticeOff": N_("Send Secure is off: this message goes as usual (unless a policy of "
                    "your organisation sends it securely)."),
    "noticeFailed": N_("Send Secure could not be set:"),
}
#: the texts the catalogs translate by another msgid: the choices, named in the buttons
#: as the portal's pages name them ("All recipients"), translated as the modes' names
#: (app/models/vocabulary.py)
CATALOG_IDS = {"all": "All Recipients", "external": "External Recipients Only"}


def translated(language: str, key: str) -> str | None:
    """The catalog's translation of text ``key`` in ``language``: None where it has
    none (or leaves the English as it is). The compiled catalogs are their .po files
    without fuzzy or empty entries (tests/test_i18n.py)."""
    msgid = CATALOG_IDS.get(key, TEXTS[key])
    text = mail_templates.translations(language).gettext(msgid)
    return None if text == msgid else text


@functools.cache
def texts(language: str) -> dict[str, str]:
    """Every text of the buttons in ``language``: English where the catalog has none."""
    if language == DEFAULT:
        return dict(TEXTS)
    return {key: translated(language, key) or english for key, english in TEXTS.items()}
