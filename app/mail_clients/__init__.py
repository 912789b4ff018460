"""The mail client buttons ("Send Secure"): an Outlook add-in and a Thunderbird extension
that set the header ``X-CCM-Mode`` on the message being written, built for one portal.

The sources sit beside this module: ``outlook/`` (the manifest template, the function
file page and its script), ``thunderbird/`` (the MailExtension's files) and ``icons/``.
The builders here are plain functions of the portal's address (``CCM_BASE_URL``); the
portal serves what they build (app/web/mail_clients, the administrator's page "Mail
client buttons"). The gateway side is app/domain/ingest.py: the header is honoured only
for senders allowed to Send Secure, and removed before any delivery.
"""

from __future__ import annotations

import io
import json
import textwrap
import uuid
import zipfile
from importlib import resources
from string import Template
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from app.delivery.mail_templates import direction
from app.mail_clients import wording

#: the header both buttons set, and the values they set it to (app/models/vocabulary.Mode;
#: "off" sets none)
HEADER = "X-CCM-Mode"

#: where the portal serves what Outlook loads itself, without a session: the function
#: file page, its script and the icons (``{size}`` one of ICON_SIZES)
OUTLOOK_COMMANDS_PATH = "/mail-clients/outlook/commands.html"
OUTLOOK_SCRIPT_PATH = "/mail-clients/outlook/send_secure.js"
ICON_PATH = "/mail-clients/icon-{size}.png"
ICON_SIZES = (16, 32, 64, 80, 128)

#: raised with each change to what the add-in or the extension does: clients update by it
OUTLOOK_VERSION = "1.1.0.0"
THUNDERBIRD_VERSION = "1.1"
#: the first Thunderbird (an ESR) with Manifest V3 and compose custom headers
THUNDERBIRD_MIN_VERSION = "128.0"
#: the extension's files besides manifest.json, in the order the package holds them
THUNDERBIRD_FILES = ("popup.html", "popup.css", "popup.js", "send_secure.js",
                     "background.js")
THUNDERBIRD_ICONS = (16, 32, 64, 128)
#: the moment every file of the package carries, so one portal always gets the same bytes
ZIP_TIME = (1980, 1, 1, 0, 0, 0)

NAME = wording.TEXTS["name"]
#: the locale each of the portal's languages has in Outlook's manifest (its Overrides)
OUTLOOK_LOCALES = {"de": "de-DE", "fr": "fr-FR", "es": "es-ES", "ar": "ar-SA"}
#: the texts the Thunderbird extension uses (manifest.json, popup.html, its scripts)
THUNDERBIRD_TEXTS = ("name", "description", "lead", "all", "external", "off")

_SOURCES = resources.files(__name__)


def source(*path: str) -> bytes:
    """One file of the sources, as bytes (``source("outlook", "send_secure.js")``)."""
    return _SOURCES.joinpath(*path).read_bytes()


def portal_address(portal_url: str) -> str:
    """``portal_url`` as the builders use it: an absolute http(s) address without a
    trailing slash. ValueError for anything else."""
    parts = urlsplit(portal_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a portal address (http:// or https://): {portal_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"a portal address has no query or fragment: {portal_url!r}")
    return portal_url.strip().rstrip("/")


def add_in_id(portal_url: str) -> uuid.UUID:
    """The add-in's (and the extension's) Id for this portal: the same on every build,
    another for another portal, so two portals' buttons can sit side by side."""
    return uuid.uuid5(uuid.NAMESPACE_URL, portal_address(portal_url) + "/mail-clients")


def _attribute(value: str) -> str:
    return escape(value, {'"': "&quot;", "'": "&apos;"})


def outlook_translations(key: str, *, prefix: str = "bt:", indent: int = 6) -> str:
    """The Override elements of text ``key``, one for each language but English, each on
    its own line (``prefix`` "bt:" in the Resources, "" in DisplayName, Description)."""
    return "".join(
        f'\n{" " * indent}<{prefix}Override Locale="{locale}" '
        f'Value="{_attribute(wording.texts(language)[key])}"/>'
        for language, locale in OUTLOOK_LOCALES.items())


def outlook_manifest(portal_url: str, *, name: str = NAME, provider: str = "CCM") -> bytes:
    """The Outlook add-in's XML manifest (add-in-only format, MailApp, VersionOverrides
    1.1) pointing at this portal: its function file, script and icons, and its words
    in the portal's languages (an Override for each; a name of one's own has none).
    Every value put in is XML-escaped, quotes too."""
    portal = portal_address(portal_url)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(portal))
    values = {
        "id": str(add_in_id(portal)), "version": OUTLOOK_VERSION, "name": name,
        "provider": provider, "portal": portal, "origin": origin,
        "commands": portal + OUTLOOK_COMMANDS_PATH,
        **{f"icon{size}": portal + ICON_PATH.format(size=size) for size in ICON_SIZES},
    }
    escaped = {key: _attribute(value) for key, value in values.items()}
    own_name = name != NAME  # has no translations
    words = {f"text_{key}": _attribute(text) for key, text in wording.TEXTS.items()}
    words |= {f"overrides_{key}": outlook_translations(key) for key in wording.TEXTS}
    words["overrides_group"] = "" if own_name else words["overrides_name"]
    commands = source("outlook", "commands.xml").decode()
    commands = Template(commands[commands.index("-->") + 3:].strip()).substitute(
        escaped, **words)
    manifest = Template(source("outlook", "manifest.xml").decode()).substitute(
        escaped, text_description=words["text_description"],
        display_name_overrides="" if own_name else
        outlook_translations("name", prefix="", indent=4),
        description_overrides=outlook_translations("description", prefix="", indent=4),
        commands_1_0=textwrap.indent(commands, "    ").lstrip(),
        commands_1_1=textwrap.indent(commands, "      ").lstrip())
    return manifest.encode()


def thunderbird_manifest(portal_url: str) -> dict:
    """The Thunderbird extension's manifest.json (Manifest V3), as a dict: its words
    are its _locales' messages (``__MSG_key__``)."""
    portal = portal_address(portal_url)
    icons = {str(size): f"icons/icon-{size}.png" for size in THUNDERBIRD_ICONS}
    return {
        "manifest_version": 3,
        "name": "__MSG_name__",
        "description": "__MSG_description__",
        "default_locale": wording.DEFAULT,
        "version": THUNDERBIRD_VERSION,
        "homepage_url": portal,
        "browser_specific_settings": {"gecko": {
            "id": f"{{{add_in_id(portal)}}}",
            "strict_min_version": THUNDERBIRD_MIN_VERSION}},
        "icons": icons,
        "compose_action": {"default_title": "__MSG_name__", "default_popup": "popup.html",
                           "default_icon": icons},
        # shows the choice a compose window opens with (a draft) on its button
        "background": {"scripts": ["send_secure.js", "background.js"]},
        # compose: read and set the message's custom headers; nothing else is used
        "permissions": ["compose"],
    }


def thunderbird_messages(language: str, *, name: str = NAME) -> dict:
    """The extension's _locales/<language>/messages.json, as a dict: its texts in
    ``language`` (a name of one's own in every language), the language's code and the
    way it is written ("ltr", "rtl") for the popup's lang and dir."""
    texts = {key: wording.texts(language)[key] for key in THUNDERBIRD_TEXTS}
    if name != NAME:
        texts["name"] = name
    texts |= {"language": language, "direction": direction(language)}
    # "$" starts a placeholder in a message: "$$" is one
    return {key: {"message": text.replace("$", "$$")} for key, text in texts.items()}


def thunderbird_xpi(portal_url: str, *, name: str = NAME) -> bytes:
    """The Thunderbird extension as an .xpi (a zip): manifest.json first, then the
    popup, its script, the icons and the messages of each language; the same bytes on
    every build for one portal."""
    manifest = json.dumps(thunderbird_manifest(portal_url), indent=2) + "\n"
    files = [("manifest.json", manifest.encode())]
    files += [(path, source("thunderbird", path)) for path in THUNDERBIRD_FILES]
    files += [(f"icons/icon-{size}.png", source("icons", f"icon-{size}.png"))
              for size in THUNDERBIRD_ICONS]
    files += [(f"_locales/{language}/messages.json",
               (json.dumps(thunderbird_messages(language, name=name), indent=2,
                           ensure_ascii=False) + "\n").encode())
              for language in wording.LANGUAGES]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        for path, data in files:
            entry = zipfile.ZipInfo(path, date_time=ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o100644 << 16
            package.writestr(entry, data)
    return buffer.getvalue()
