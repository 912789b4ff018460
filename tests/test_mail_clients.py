"""The mail client buttons: the scripts' own tests (Node), the Outlook manifest and the
Thunderbird package as built for a portal, and what the portal serves of them.

Microsoft's XSD files for the add-in manifest are not vendored: no package the project
can install ships them (npm's office-addin-manifest validates through a Microsoft web
service, and neither it nor office-addin-manifest-converter holds the schemas). The
manifest checks here follow the schema's documented element reference instead: the
order of OfficeApp's children, each VersionOverrides' parts, the menu, every resource
named being defined, the string lengths Microsoft allows."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import uuid
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_python
from babel.messages.pofile import read_po

from app import mail_clients
from app.mail_clients import wording
from app.web import languages, security
from app.web.mail_clients import routes

ROOT = Path(__file__).resolve().parents[1]
PORTAL = "https://portal.acme.test"

OFFICE = "{http://schemas.microsoft.com/office/appforoffice/1.1}"
OVERRIDES_1_0 = "{http://schemas.microsoft.com/office/mailappversionoverrides}"
OVERRIDES_1_1 = "{http://schemas.microsoft.com/office/mailappversionoverrides/1.1}"
BT = "{http://schemas.microsoft.com/office/officeappbasictypes/1.0}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
#: OfficeApp's children in the order the schema's sequence has them (MailApp)
OFFICE_APP_ORDER = ["Id", "Version", "ProviderName", "DefaultLocale", "DisplayName",
                    "Description", "IconUrl", "HighResolutionIconUrl", "SupportUrl",
                    "AppDomains", "Hosts", "Requirements", "FormSettings", "Permissions",
                    "Rule", "DisableEntityHighlighting", "VersionOverrides"]


def node() -> str:
    """Node.js, or skip (fail under CI, whose .ci/run installs it) saying it is missing."""
    found = shutil.which("node")
    if not found:
        missing = "node is missing: apt-get install nodejs (see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    return found


# --- the scripts ------------------------------------------------------------------------


def test_the_scripts_pass_their_node_tests():
    """tests/js/: each script's logic against fakes of Office.js and messenger.compose."""
    result = subprocess.run([node(), "--test", "tests/js/"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.M)
    assert passed and int(passed.group(1)) >= 21, result.stdout


# --- the Outlook manifest ---------------------------------------------------------------


def manifest(portal: str = PORTAL) -> ElementTree.Element:
    # the project's own output, parsed to be checked (no entities, no DTD in it)
    return ElementTree.fromstring(mail_clients.outlook_manifest(portal))  # noqa: S314


def local(element: ElementTree.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def test_the_manifest_is_an_add_in_only_mail_app_in_the_schemas_order():
    root = manifest()
    assert root.tag == f"{OFFICE}OfficeApp"
    assert root.get(XSI_TYPE) == "MailApp"
    assert [local(child) for child in root] == OFFICE_APP_ORDER
    assert root.findtext(f"{OFFICE}Id") == str(mail_clients.add_in_id(PORTAL))
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", root.findtext(f"{OFFICE}Version"))
    assert root.find(f"{OFFICE}Hosts/{OFFICE}Host").get("Name") == "Mailbox"
    assert root.findtext(f"{OFFICE}Permissions") == "ReadWriteItem"
    rule = root.find(f"{OFFICE}Rule/{OFFICE}Rule")
    assert (rule.get("ItemType"), rule.get("FormType")) == ("Message", "Edit")


def test_the_add_in_id_is_stable_for_a_portal_and_another_for_another():
    first = mail_clients.outlook_manifest(PORTAL)
    assert first == mail_clients.outlook_manifest(PORTAL + "/")
    other = manifest("https://mail.example.org").findtext(f"{OFFICE}Id")
    assert uuid.UUID(other) != mail_clients.add_in_id(PORTAL)


def overrides() -> list[ElementTree.Element]:
    """The VersionOverrides 1.0 and, inside it, 1.1."""
    outer = manifest().find(f"{OVERRIDES_1_0}VersionOverrides")
    inner = outer.find(f"{OVERRIDES_1_1}VersionOverrides")
    assert outer.get(XSI_TYPE) == "VersionOverridesV1_0"
    assert inner.get(XSI_TYPE) == "VersionOverridesV1_1"
    return [outer, inner]


@pytest.mark.parametrize("level", [0, 1], ids=["1.0", "1.1"])
def test_each_version_override_has_the_compose_menu_of_three_choices(level):
    node_ = overrides()[level]
    ns = OVERRIDES_1_1 if level else OVERRIDES_1_0
    assert [local(child) for child in node_][:3] == ["Requirements", "Hosts", "Resources"]
    needs = node_.find(f"{ns}Requirements/{BT}Sets")
    assert needs.get("DefaultMinVersion") == "1.8"  # internetHeaders
    assert needs.find(f"{BT}Set").get("Name") == "Mailbox"
    host = node_.find(f"{ns}Hosts/{ns}Host")
    assert host.get(XSI_TYPE) == "MailHost"
    form = host.find(f"{ns}DesktopFormFactor")
    point = form.find(f"{ns}ExtensionPoint")
    assert point.get(XSI_TYPE) == "MessageComposeCommandSurface"
    menu = point.find(f"{ns}OfficeTab/{ns}Group/{ns}Control")
    assert menu.get(XSI_TYPE) == "Menu"
    strings = {s.get("id"): s.get("DefaultValue")
               for s in node_.iter(f"{BT}String")}
    assert strings[menu.find(f"{ns}Label").get("resid")] == "Send Secure"
    items = menu.findall(f"{ns}Items/{ns}Item")
    labels = [strings[item.find(f"{ns}Label").get("resid")] for item in items]
    assert labels == ["All recipients", "External recipients only", "Off"]
    actions = [item.find(f"{ns}Action") for item in items]
    assert {action.get(XSI_TYPE) for action in actions} == {"ExecuteFunction"}
    functions = [action.findtext(f"{ns}FunctionName") for action in actions]
    assert functions == ["sendSecureAll", "sendSecureExternal", "sendSecureOff"]
    script = mail_clients.source("outlook", "send_secure.js").decode()
    for function, mode in zip(functions, ["all", "external", "off"], strict=True):
        assert f"{function}: \"{mode}\"" in script  # the script's COMMANDS
    # every resource named is defined, once
    defined = [e.get("id") for kind in ("Images", "Urls", "ShortStrings", "LongStrings")
               for e in node_.find(f"{ns}Resources/{BT}{kind}")]
    assert len(defined) == len(set(defined))
    named = {e.get("resid") for e in node_.iter() if e.get("resid")}
    assert named <= set(defined)
    url = form.find(f"{ns}FunctionFile").get("resid")
    assert next(e for e in node_.iter(f"{BT}Url") if e.get("id") == url).get(
        "DefaultValue") == PORTAL + mail_clients.OUTLOOK_COMMANDS_PATH
    # Microsoft's limits on a manifest's strings
    for element in node_.find(f"{ns}Resources/{BT}ShortStrings"):
        assert len(element.get("DefaultValue")) <= 125
    for element in node_.find(f"{ns}Resources/{BT}LongStrings"):
        assert len(element.get("DefaultValue")) <= 250


def addresses(root: ElementTree.Element) -> list[str]:
    found = [e.get("DefaultValue") for e in root.iter() if (e.get("DefaultValue") or "")
             .startswith(("http:", "https:"))]
    return found + [e.text for e in root.iter(f"{OFFICE}AppDomain")]


def test_every_address_in_the_manifest_is_this_portals_and_served(client):
    found = addresses(manifest())
    assert len(found) >= 10
    for address in found:
        assert address.startswith(PORTAL), address
        path = urlsplit(address).path
        if path in ("", "/"):
            continue
        answer = client.get(path)
        assert answer.status_code == 200, address
        assert answer.mimetype in ("text/html", "image/png"), address


@pytest.mark.parametrize("portal", [
    'https://portal.test/x"/><Evil xmlns="urn:x"/><a b="',
    "https://portal.test/a&b<c>d'e",
    "https://portal.test/]]><!--",
])
def test_a_hostile_portal_address_is_escaped_not_obeyed(portal):
    root = manifest(portal)  # well-formed, whatever the address holds
    assert not [e for e in root.iter() if "Evil" in e.tag]
    assert [local(child) for child in root] == OFFICE_APP_ORDER
    expected = portal.rstrip("/") + mail_clients.OUTLOOK_COMMANDS_PATH
    assert root.find(f"{OFFICE}FormSettings/{OFFICE}Form/{OFFICE}DesktopSettings/"
                     f"{OFFICE}SourceLocation").get("DefaultValue") == expected
    assert root.find(f"{OFFICE}SupportUrl").get("DefaultValue") == portal.rstrip("/")


@pytest.mark.parametrize("portal", ["", "portal.acme.test", "ftp://portal.acme.test",
                                    "javascript:alert(1)", "https://", "https://a.test/?x=1"])
def test_only_a_portals_http_address_is_built_into_a_button(portal):
    with pytest.raises(ValueError, match="portal address"):
        mail_clients.outlook_manifest(portal)
    with pytest.raises(ValueError, match="portal address"):
        mail_clients.thunderbird_xpi(portal)


# --- the Thunderbird package ------------------------------------------------------------


def xpi(portal: str = PORTAL) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(mail_clients.thunderbird_xpi(portal)))


def test_the_package_starts_with_its_manifest_and_is_the_same_on_every_build():
    package = xpi()
    assert package.namelist()[0] == "manifest.json"
    assert mail_clients.thunderbird_xpi(PORTAL) == mail_clients.thunderbird_xpi(PORTAL)
    assert {entry.date_time for entry in package.infolist()} == {mail_clients.ZIP_TIME}
    assert package.testzip() is None


def test_the_extensions_manifest():
    data = json.loads(xpi().read("manifest.json"))
    assert data["manifest_version"] == 3
    assert data["name"] == "__MSG_name__"  # _locales/<language>/messages.json
    assert data["description"] == "__MSG_description__"
    assert data["default_locale"] == "en"
    assert re.fullmatch(r"\d+(\.\d+){0,3}", data["version"])
    gecko = data["browser_specific_settings"]["gecko"]
    assert gecko["id"] == f"{{{mail_clients.add_in_id(PORTAL)}}}"
    assert gecko["strict_min_version"] == "128.0"
    assert data["homepage_url"] == PORTAL
    assert data["compose_action"]["default_popup"] == "popup.html"
    assert data["compose_action"]["default_title"] == "__MSG_name__"
    assert data["background"] == {"scripts": ["send_secure.js", "background.js"]}
    assert "content_scripts" not in data


def test_the_extension_asks_only_for_the_permission_it_uses():
    """compose: getComposeDetails and setComposeDetails. composeAction needs none (the
    manifest's compose_action gives it), nor tabs.query for the tab's id, nor i18n."""
    package = xpi()
    assert json.loads(package.read("manifest.json"))["permissions"] == ["compose"]
    used = set()
    for name in package.namelist():
        if name.endswith(".js"):
            used |= set(re.findall(r"messenger\.(\w+)\.(\w+)", package.read(name).decode()))
    assert {api for api, _ in used} == {"compose", "composeAction", "tabs", "i18n"}
    assert {call for api, call in used if api == "tabs"} == {"query", "onCreated"}


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found += [value for name, value in attrs if name in ("src", "href")]


def test_every_file_the_extension_names_is_in_the_package():
    package = xpi()
    names = set(package.namelist())
    data = json.loads(package.read("manifest.json"))
    named = [data["compose_action"]["default_popup"], *data["background"]["scripts"],
             *data["icons"].values(),
             *data["compose_action"]["default_icon"].values()]
    links = _Links()
    links.feed(package.read("popup.html").decode())
    named += links.found
    assert links.found == ["popup.css", "send_secure.js", "popup.js"]
    assert set(named) <= names
    for size, path in data["icons"].items():
        assert package.read(path)[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(package.read(path)[16:20], "big") == int(size)


def test_the_popup_offers_the_three_choices_with_the_gateways_values():
    """Each button's words are its mode's message (send_secure.js, localise)."""
    popup = xpi().read("popup.html").decode()
    assert re.findall(r'data-mode="(\w+)" data-i18n="(\w+)"[^>]*></button>', popup) == [
        ("all", "all"), ("external", "external"), ("off", "off")]
    english = json.loads(xpi().read("_locales/en/messages.json"))
    assert [english[mode]["message"] for mode in ("all", "external", "off")] == [
        "All recipients", "External recipients only", "Off"]
    assert "<script>" not in popup and "style=" not in popup  # no inline script or style


# --- the buttons' words, in the portal's languages --------------------------------------

TRANSLATED = ["de", "fr", "es", "ar"]
#: what the portal's pages call the buttons and their choices, in German: the buttons say
#: the same
GERMAN = {"name": "Sicher senden", "all": "Alle Empfänger",
          "external": "Nur externe Empfänger", "off": "Aus"}


def catalog_translation(language: str, msgid: str) -> str:
    """The portal catalog's translation of ``msgid``, read here on its own."""
    with open(ROOT / "app" / "translations" / language / "LC_MESSAGES" / "messages.po",
              "rb") as file:
        entry = read_po(file, locale=language).get(msgid)
    assert entry is not None and entry.string and not entry.fuzzy, (language, msgid)
    return entry.string


@pytest.fixture(scope="module")
def catalogs() -> dict[str, dict[str, str]]:
    """Every text of the buttons as the portal's catalogs translate it: language → key →
    words (English as written in app/mail_clients/wording.py)."""
    found = {"en": dict(wording.TEXTS)}
    for language in TRANSLATED:
        found[language] = {
            key: catalog_translation(language, wording.CATALOG_IDS.get(key, english))
            for key, english in wording.TEXTS.items()}
    return found


def test_the_buttons_speak_the_portals_languages():
    assert list(wording.LANGUAGES) == list(languages.LANGUAGES)
    assert set(mail_clients.OUTLOOK_LOCALES) == set(TRANSLATED)


def test_every_text_of_the_buttons_is_in_every_catalog(catalogs):
    for language in TRANSLATED:
        assert wording.texts(language) == catalogs[language], language
        for key in wording.TEXTS:
            assert wording.translated(language, key) is not None, (language, key)
    assert {key: catalogs["de"][key] for key in GERMAN} == GERMAN


def test_the_words_only_the_buttons_use_are_marked_for_the_catalogs():
    """``pybabel extract`` finds them in wording.py, so an update keeps them."""
    path = ROOT / "app" / "mail_clients" / "wording.py"
    with open(path, "rb") as file:
        found = {message for _, _, message, _ in extract_python(
            file, DEFAULT_KEYWORDS.keys(), [], {})}
    own = {english for key, english in wording.TEXTS.items()
           if key not in wording.CATALOG_IDS}
    assert own <= found
    for key, msgid in wording.CATALOG_IDS.items():
        assert msgid.lower() == wording.TEXTS[key].lower()  # the same words, in case


def overrides_of(element: ElementTree.Element, ns: str) -> dict[str, str]:
    return {override.get("Locale"): override.get("Value")
            for override in element.findall(f"{ns}Override")}


def locales_of(texts: dict[str, str]) -> dict[str, str]:
    """``texts`` (language → words) keyed as the manifest's Overrides are."""
    return {locale: texts[language]
            for language, locale in mail_clients.OUTLOOK_LOCALES.items()}


#: each string resource of the manifest → the text it says
RESOURCES = {"Group.Label": "name", "Menu.Label": "name", "All.Label": "all",
             "External.Label": "external", "Off.Label": "off", "Menu.Tip": "menuTip",
             "All.Tip": "allTip", "External.Tip": "externalTip", "Off.Tip": "offTip"}


def test_the_manifest_has_every_string_in_every_language_as_the_catalogs_say(catalogs):
    root = manifest()
    per_key = {key: {language: catalogs[language][key] for language in TRANSLATED}
               for key in wording.TEXTS}
    for tag, key, most in (("DisplayName", "name", 125), ("Description", "description", 250)):
        element = root.find(f"{OFFICE}{tag}")
        assert element.get("DefaultValue") == catalogs["en"][key]
        assert overrides_of(element, OFFICE) == locales_of(per_key[key])
        assert all(len(value) <= most for value in overrides_of(element, OFFICE).values())
    for level, node_ in enumerate(overrides()):
        ns = OVERRIDES_1_1 if level else OVERRIDES_1_0
        strings = {s.get("id"): s for s in node_.iter(f"{BT}String")}
        assert set(strings) == set(RESOURCES)
        for resid, key in RESOURCES.items():
            assert strings[resid].get("DefaultValue") == catalogs["en"][key], resid
            assert overrides_of(strings[resid], BT) == locales_of(per_key[key]), resid
        # Microsoft's limits hold for every language
        for kind, most in (("ShortStrings", 125), ("LongStrings", 250)):
            for element in node_.find(f"{ns}Resources/{BT}{kind}"):
                for value in overrides_of(element, BT).values():
                    assert 0 < len(value) <= most, value
    assert [o.get("Locale") for o in root.iter(f"{OFFICE}Override")] == [
        "de-DE", "fr-FR", "es-ES", "ar-SA"] * 2
    assert len(list(root.iter(f"{BT}Override"))) == 2 * len(RESOURCES) * 4


def test_a_name_of_ones_own_is_not_translated():
    root = ElementTree.fromstring(  # noqa: S314 -- the project's own output
        mail_clients.outlook_manifest(PORTAL, name="Acme Secure"))
    display = root.find(f"{OFFICE}DisplayName")
    assert display.get("DefaultValue") == "Acme Secure" and not overrides_of(display, OFFICE)
    group = next(s for s in root.iter(f"{BT}String") if s.get("id") == "Group.Label")
    assert group.get("DefaultValue") == "Acme Secure" and not overrides_of(group, BT)
    package = zipfile.ZipFile(io.BytesIO(mail_clients.thunderbird_xpi(
        PORTAL, name="Acme $ecure")))
    for language in wording.LANGUAGES:
        messages = json.loads(package.read(f"_locales/{language}/messages.json"))
        assert messages["name"]["message"] == "Acme $$ecure"  # "$$" is one "$"


def test_the_outlook_info_bar_says_what_the_catalogs_say(catalogs):
    """send_secure.js holds its words in a table of its own (Outlook loads it as it is):
    the table is the catalogs' words, every one of them."""
    script = mail_clients.source("outlook", "send_secure.js").decode()
    assert "\\u" not in script  # the words as they read
    result = subprocess.run(
        [node(), "-e", "process.stdout.write(JSON.stringify(require("
         "'./app/mail_clients/outlook/send_secure.js').MESSAGES))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    table = json.loads(result.stdout)
    assert list(table) == list(wording.LANGUAGES)
    for language, messages in table.items():
        assert messages == {key: catalogs[language][key] for key in messages}, (
            f"{language}: copy the catalogs' words into MESSAGES of send_secure.js "
            "(wording.texts)")
        assert set(messages) == {key for key in wording.TEXTS if key.startswith("notice")}
        assert all(len(message) <= 150 for message in messages.values())


def test_the_package_has_each_languages_messages_with_every_key_used(catalogs):
    package = xpi()
    manifest_json = package.read("manifest.json").decode()
    used = set(re.findall(r"__MSG_(\w+)__", manifest_json))
    used |= set(re.findall(r'data-i18n(?:-label)?="(\w+)"',
                           package.read("popup.html").decode()))
    script = package.read("send_secure.js").decode()
    used |= set(re.findall(r'(?:getMessage|message)\("(\w+)"\)', script))
    assert 'getMessage(mode)' in script  # the title: a message for each mode
    used |= set(json.loads(subprocess.run(
        [node(), "-e", "process.stdout.write(JSON.stringify(require("
         "'./app/mail_clients/thunderbird/send_secure.js').MODES))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout))
    assert used == {"name", "description", "lead", "all", "external", "off", "language",
                    "direction"}
    locales = sorted(n for n in package.namelist() if n.startswith("_locales/"))
    assert locales == sorted(f"_locales/{language}/messages.json"
                             for language in wording.LANGUAGES)
    for language in wording.LANGUAGES:
        messages = json.loads(package.read(f"_locales/{language}/messages.json"))
        assert set(messages) == used, language
        assert {key: entry["message"] for key, entry in messages.items()
                if key not in ("language", "direction")} == {
            key: catalogs[language][key] for key in used - {"language", "direction"}}
        assert messages["language"]["message"] == language
        assert messages["direction"]["message"] == ("rtl" if language == "ar" else "ltr")


# --- what the portal serves -------------------------------------------------------------


@pytest.fixture
def people(acme, make_user, make_ccm_sender):
    make_user(acme, "admin@acme.test", role="admin")
    make_ccm_sender(acme, "alice@acme.test")
    make_user(acme, "bob@acme.test", role="internal")
    make_user(acme, "pat@partner.test")
    return acme


DOWNLOADS = {"/mail-clients/outlook/manifest.xml": "application/xml",
             "/mail-clients/thunderbird/send-secure.xpi": "application/x-xpinstall"}


@pytest.mark.parametrize(("email", "allowed"), [
    ("admin@acme.test", True), ("alice@acme.test", True),  # Send Secure allowed
    ("bob@acme.test", False), ("pat@partner.test", False)])
def test_the_downloads_are_for_administrators_and_send_secure_users(
        app, client, auth, people, email, allowed):
    auth.sign_in(email, slug="acme")
    for path, mimetype in DOWNLOADS.items():
        answer = client.get(path)
        assert answer.status_code == (200 if allowed else 403), path
        if allowed:
            assert answer.mimetype == mimetype
            assert answer.headers["Content-Disposition"].startswith("attachment; filename=")
            assert answer.headers["Cache-Control"] == "no-store"  # built for this portal
    if allowed:
        portal = app.config["BASE_URL"]
        assert client.get("/mail-clients/outlook/manifest.xml").data == \
            mail_clients.outlook_manifest(portal)
        assert client.get("/mail-clients/thunderbird/send-secure.xpi").data == \
            mail_clients.thunderbird_xpi(portal)


def test_the_downloads_ask_to_sign_in_first(client):
    for path in DOWNLOADS:
        answer = client.get(path)
        assert answer.status_code == 302 and "/sign-in" in answer.headers["Location"]


def test_only_the_function_file_may_run_office_js_and_be_framed_by_outlook(client):
    page = client.get(mail_clients.OUTLOOK_COMMANDS_PATH)
    assert page.status_code == 200 and page.mimetype == "text/html"
    policy = dict(part.split(" ", 1) for part in
                  page.headers["Content-Security-Policy"].split("; "))
    assert policy["script-src"] == "'self' https://appsforoffice.microsoft.com"
    assert policy["default-src"] == "'none'"
    assert "'none'" not in policy["frame-ancestors"]
    assert all(origin.startswith("https://") for origin in policy["frame-ancestors"].split())
    assert "unsafe" not in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert re.findall(r'<script src="([^"]+)"', html) == [
        routes.OFFICE_JS_ORIGIN + "/lib/1/hosted/office.js", "send_secure.js"]
    assert "<script>" not in html and "style" not in html
    script = client.get(mail_clients.OUTLOOK_SCRIPT_PATH)
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    for other in ("/sign-in", mail_clients.OUTLOOK_SCRIPT_PATH, "/mail-clients/icon-32.png"):
        assert client.get(other).headers["Content-Security-Policy"] == \
            security.CONTENT_SECURITY_POLICY


def test_the_icons_may_be_shown_by_outlook_from_its_own_origin(client):
    for size in mail_clients.ICON_SIZES:
        answer = client.get(f"/mail-clients/icon-{size}.png")
        assert answer.status_code == 200 and answer.mimetype == "image/png"
        assert answer.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        assert int.from_bytes(answer.data[16:20], "big") == size
    assert client.get("/mail-clients/icon-33.png").status_code == 404


def test_the_administrators_page_offers_both_with_instructions(client, auth, people):
    auth.sign_in("admin@acme.test", slug="acme")
    page = client.get("/admin/mail-clients").get_data(as_text=True)
    assert "<h1>Mail client buttons</h1>" in page
    assert 'href="/admin/mail-clients" aria-current="page"' in page  # the side menu
    for path in DOWNLOADS:
        assert f'href="{path}"' in page
    for words in ("Integrated apps", "Upload custom apps", "Add-ins",
                  "Install Add-on From File"):
        assert words in page
    # the test portal's address is http://: Outlook would refuse it, and the page says so
    assert "Outlook loads add-ins only from https addresses" in page


@pytest.mark.parametrize(("email", "shown"), [("alice@acme.test", True),
                                               ("bob@acme.test", False),
                                               ("pat@partner.test", False)])
def test_the_security_page_offers_them_to_send_secure_users(client, auth, people, email,
                                                            shown):
    auth.sign_in(email, slug="acme")
    page = client.get("/account/second-factor").get_data(as_text=True)
    assert ('id="mail-clients"' in page) is shown
    assert ('href="/mail-clients/thunderbird/send-secure.xpi"' in page) is shown
    assert "Upload custom apps" not in page  # the administrator's way, not theirs
    if email != "pat@partner.test":
        compose = client.get("/compose/").get_data(as_text=True)
        assert ('href="/account/second-factor#mail-clients"' in compose) is shown


def test_the_security_page_offers_them_in_german(client, auth, people):
    auth.sign_in("alice@acme.test", slug="acme")
    page = client.get("/account/second-factor",
                      headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Sicher senden aus Ihrem Mailprogramm" in page
    assert "Thunderbird-Erweiterung herunterladen" in page
