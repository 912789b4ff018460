"""Every page the portal serves, and every notification it sends, is valid HTML, as the
W3C's Nu HTML checker reads it.

Each role of tests/test_no_server_errors.py (a visitor half-way through signing in, an
external recipient, an internal user, a tenant's administrator, the platform
administrator) opens every page in ``app.url_map``, as a page and as the htmx fragment
the same address answers (wrapped in a document of its own), plus the error pages and
forms sent back with their errors. All of them go to one run of the checker (a JVM
starts slowly). Only the ``hx-*`` attributes are forgiven: the checker does not know
htmx, and nothing else is. Each built-in notification's HTML part, in every language and
down each of its branches, goes to a second run.

The checker is vnu.jar from the npm package ``vnu-jar`` (``.ci/run`` installs it, and
Java, under ``.cache/vnu``); ``CCM_VNU_JAR`` names another copy. Without Java or the
jar the test is skipped, except under CI where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support import PASSWORD, post_form
from test_no_server_errors import ROLES, Walk, fill, path_values, world  # noqa: F401

from app.delivery import mail_templates
from app.web.languages import LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
JAR = Path(os.environ.get("CCM_VNU_JAR")
           or ROOT / ".cache/vnu/node_modules/vnu-jar/build/dist/vnu.jar")
#: the only messages forgiven: an attribute of htmx's, which the checker does not know
HTMX_ATTRIBUTE = re.compile(r'^Attribute “hx-[a-z-]+” not allowed on element “[a-z0-9]+” '
                            r"at this point\.$")
#: answers that are not pages: files, downloads, and the logo
NOT_PAGES = {"static", "inbox.attachment", "inbox.inline", "compose.sent_attachment",
             "compose.sent_inline", "auth.logo", "health.healthz", "health.readyz",
             "monitoring.metrics"}

#: fragments that views choose by the element htmx swaps (rendering.page)
TARGETED = [("/inbox/", "messages"), ("/admin/people", "people"),
            ("/admin/tracking?subject=Figures", "results"), ("/admin/audit", "audit"),
            ("/sent/", "sent")]


def checker() -> list[str]:
    """The command that runs the checker, or skip (fail under CI) saying what is missing."""
    java = shutil.which("java")
    missing = ("java is missing: apt-get install default-jre-headless" if not java else
               f"{JAR} is missing: npm install --prefix .cache/vnu vnu-jar (see .ci/run)"
               if not JAR.exists() else None)
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    return [java, "-Xss1m", "-jar", str(JAR), "--format", "json", "--errors-only"]


def as_document(fragment: str) -> str:
    """An htmx fragment in a document of its own, its ``<title>`` (which htmx moves to
    the page's head) in the head."""
    title = re.match(r"\s*(<title>.*?</title>)", fragment, re.S)
    head = title.group(1) if title else "<title>Fragment</title>"
    body = fragment[title.end():] if title else fragment
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{head}</head>'
            f"<body>{body}</body></html>")


class Pages:
    """What the roles were shown, one file each, named after where it came from."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: dict[Path, str] = {}
        self.seen: set[str] = set()

    def keep(self, what: str, response, fragment: bool = False) -> None:
        if "text/html" not in response.content_type:
            return
        text = response.get_data(as_text=True)
        if fragment and not text.lstrip().lower().startswith("<!doctype"):
            text = as_document(text)
        key = re.sub(r'value="[^"]*"|"X-CSRFToken": "[^"]*"', "", text)
        if key in self.seen:
            return
        self.seen.add(key)
        path = self.folder / f"{len(self.names):04d}.html"
        path.write_text(text, encoding="utf-8")
        self.names[path] = what


def visit(app, world, role: str, pages: Pages) -> None:  # noqa: F811 (world, a fixture)
    """Every page and fragment the role can open, and a few forms sent back wrong."""
    walk = Walk(app, world, role)
    browser = walk.new_browser()
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if "GET" not in rule.methods or rule.endpoint in NOT_PAGES or \
                rule.endpoint in ("auth.sign_out",):
            continue
        url = fill(rule, path_values(world, rule.endpoint))
        pages.keep(f"{role}: GET {url}", browser.get(url, follow_redirects=True))
        pages.keep(f"{role}: GET {url} (htmx)",
                   browser.get(url, headers={"HX-Request": "true"}), fragment=True)
    pages.keep(f"{role}: a page that is not there", browser.get("/no/such/page"))


def sent_wrong(client, pages: Pages) -> None:
    """Forms answered with their errors, as a page and as htmx re-renders them."""
    for headers, fragment in (({}, False), ({"HX-Request": "true"}, True)):
        what = " (htmx)" if fragment else ""
        pages.keep("sign-in with a wrong password" + what, post_form(
            client, "/t/acme/sign-in", {"email": "alice@acme.test", "password": "wrong"},
            headers=headers), fragment)
        pages.keep("sign-in with nothing" + what, post_form(
            client, "/sign-in", {"email": "", "password": ""}, headers=headers), fragment)
        pages.keep("forgotten password, no address" + what, post_form(
            client, "/password/forgot", {"email": ""}, headers=headers), fragment)
    client.post("/sign-in", data={"email": "x"})  # no CSRF token
    pages.keep("a form without its CSRF token", client.post("/sign-in", data={"email": "x"}))


def test_every_page_is_valid_html(app, client, world, tmp_path):  # noqa: F811
    command = checker()
    pages = Pages(tmp_path)
    for role in ROLES:
        visit(app, world, role, pages)
    sent_wrong(app.test_client(), pages)
    signed_in = app.test_client()
    post_form(signed_in, "/t/acme/sign-in", {"email": "admin@acme.test", "password": PASSWORD})
    pages.keep("an administrator's policy form sent empty", post_form(
        signed_in, "/admin/policies/new", {"name": "", "kind": "route"}))
    pages.keep("the settings sent with an unknown time zone", post_form(
        signed_in, "/admin/settings", {"name": "Acme", "time_zone": "Mars/Olympus"}))
    pages.keep("the policy tester's answer", post_form(
        signed_in, "/admin/policies/test", {"sender": "alice@acme.test",
                                            "recipients": "pat@partner.test",
                                            "subject": "Figures", "body": "secret"}))
    pages.keep("a message search", signed_in.get("/admin/tracking?subject=Figures"))
    for url, target in TARGETED:
        pages.keep(f"GET {url} (htmx into #{target})", signed_in.get(
            url, headers={"HX-Request": "true", "HX-Target": target}), fragment=True)
    print(f"{len(pages.names)} pages")
    assert len(pages.names) >= 150, "the visit has lost pages"

    report = checked(command, pages.names)
    assert not report, f"{len(report)} problems in {len(pages.names)} pages:\n" + \
        "\n".join(report)


def checked(command: list[str], names: dict[Path, str]) -> list[str]:
    """What the checker finds in the files ``names`` (file → where it came from), one
    line each, in one run of it."""
    result = subprocess.run([*command, *map(str, names)], capture_output=True, text=True,
                            timeout=600)
    try:
        messages = json.loads(result.stderr)["messages"]  # vnu writes its report there
    except ValueError:
        pytest.fail(f"the checker gave no report (exit {result.returncode}):\n"
                    f"{result.stderr[-3000:]}{result.stdout[-3000:]}", pytrace=False)
    problems = [m for m in messages if m.get("type") == "error" or m.get("subType") == "fatal"]
    problems = [m for m in problems if not HTMX_ATTRIBUTE.match(m.get("message", ""))]
    return [f"{names[Path(m['url'].removeprefix('file:'))]}: line {m.get('lastLine')}: "
            f"{m['message']}\n    {m.get('extract', '').strip()[:160]}" for m in problems]


#: the values that choose between a notification's branches, each way
BRANCHES = [{"new_account": True, "reset": False, "passkey": False, "logo_src": ""},
            {"new_account": False, "reset": True, "passkey": True,
             "logo_src": "cid:logo.1@securemail.example.com"}]


def test_every_built_in_notification_is_valid_html(app, tmp_path):
    """The HTML part of each kind of notification, as sent in each language (English,
    and Arabic right to left, among them), down each of its branches: the checker reads
    it as it reads the pages. Mail clients are kinder than browsers to nothing."""
    command = checker()
    names = {}
    for kind in sorted(mail_templates.KINDS):
        for language in LANGUAGES:
            for values in BRANCHES:
                rendered, problem = mail_templates.render_samples(
                    kind, mail_templates.builtin(kind, language), language,
                    tenant_values=values)
                assert problem is None, (kind, language, problem)
                path = tmp_path / f"{len(names):04d}.html"
                path.write_text(rendered["html"], encoding="utf-8")
                names[path] = f"{kind} in {language} with {values}"
    assert len(names) == len(mail_templates.KINDS) * len(LANGUAGES) * len(BRANCHES) >= 20
    report = checked(command, names)
    assert not report, f"{len(report)} problems in {len(names)} notifications:\n" + \
        "\n".join(report)


def test_a_fragments_title_is_for_htmx_alone(app, client, auth, make_tenant, make_user):
    """htmx moves a swapped fragment's <title> into the head; in a whole page the head
    has its own, and a second one in <main> would be invalid."""
    acme = make_tenant("acme", domains=["acme.test"])
    make_user(acme, "pat@partner.test")
    auth.sign_in("pat@partner.test", slug="acme")
    swapped = client.get("/inbox/", headers={"HX-Request": "true"}).get_data(as_text=True)
    whole = client.get("/inbox/").get_data(as_text=True)
    restored = client.get("/inbox/", headers={"HX-Request": "true",
                                              "HX-History-Restore-Request": "true"})
    assert swapped.lstrip().startswith("<title>Inbox · ")
    for page in (whole, restored.get_data(as_text=True)):
        assert page.count("<title>") == 1
        assert page.index("<title>") < page.index("</head>")
