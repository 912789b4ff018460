"""No input gives a server error: every route, every method, every role, hostile values.

The routes come from ``app.url_map``, so a page added later is covered without editing
this file. Each role (a visitor half-way through signing in, an external recipient, an
internal user, a tenant's administrator, the platform administrator) walks every route:

* each path parameter filled with hostile values (the others with a real object the role
  may see, so that only the hostile one can be what goes wrong);
* the route's own form, found by rendering the role's pages and reading every form's
  inputs, submitted as a browser would, then with one field at a time made hostile, by
  values chosen for the field's type (dates for dates, numbers for numbers);
* parameters views read by hand (found in app/ by their ``request.args.get("...")``) and
  a few common names, all at once, in the query string and the body;
* every parameter at once as bytes that are not UTF-8, raw in the body;
* each cookie the portal sets, and the headers it reads, hostile.

The application propagates exceptions, so a 500 arrives here with its traceback. A
request that fails is recorded and the walk goes on: the assertion lists them all.
"""

from __future__ import annotations

import inspect
import io
import re
import traceback
from dataclasses import dataclass, field
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

import pyotp
import pytest
from sqlalchemy import select, update
from support import PASSWORD, csrf_token, post_form
from werkzeug.routing import IntegerConverter

import app as application_package
from app.domain import accounts, composing, ingest, second_factor, tokens
from app.extensions import db
from app.models import ApplicationSettings, AuthSession, Passkey, Policy, Tenant, User
from app.web.auth.routes import LAST_TENANT_COOKIE

ROLES = ("visitor", "external", "internal", "administrator", "platform administrator")

#: hostile path segments, spelled as they travel in a URL (a server percent-decodes them):
#: numbers for a number, and everything for text (a number's pattern refuses the rest)
NUMBER_SEGMENTS = ["0", str(2**31 - 1), str(2**31), str(2**63 - 1), str(2**63), str(10**30),
                   "9" * 5000]
PATH_VALUES = {"number": NUMBER_SEGMENTS,
               "text": ["0", "-1", str(2**63), "9" * 5000, "x" * 5000, "%00", "%0d%0a",
                        "%ff%fe", "%E2%98%83%F0%9D%84%9E", "..", "%2e%2e%2f%2e%2e", "%20"]}

#: hostile values for any field; a list is the name repeated
TEXT_VALUES = ["", "a\r\nBcc: evil@example.test", "/a\r\nSet-Cookie: evil=1", "a\x00b",
               "x" * 100_000, "\u2603 \U0001d11e \u202eevil \ufeff", ["1", "\u2603"]]
NUMBER_VALUES = [*TEXT_VALUES, "0", "-1", str(2**63), str(10**30), str(-(2**63) - 1), "1e308",
                 "NaN", "9" * 5000]
DATE_VALUES = [*TEXT_VALUES, "9999-12-31", "0000-01-01", "10000-01-01", "0001-01-01", "2024-02-30",
               "-0001-01-01", "9999-12-31T23:59:59"]
#: names views commonly read, and the kind of value each holds
COMMON_NAMES = {"next": "text", "since": "date", "until": "date", "q": "text",
                "page": "number", "id": "number", "subject": "text", "email": "text",
                "code": "text"}
#: for the requests that set every name no declared field has at once: request i gives
#: each name the i-th value of its kind; short values, so that a dozen names still make a
#: query string of reasonable length
AT_ONCE = {
    "text": ["", "a\r\nBcc: evil@example.test", "/a\r\nSet-Cookie: evil=1", "a\x00b",
             "\u2603 \U0001d11e \u202eevil", str(2**63), ["1", "\u2603"], "%ff%fe"],
    "number": ["", str(2**63), str(10**30), str(-(2**63) - 1), "-1", "1e308", ["1", "2"],
               "a\x00b"],
    "date": ["", "9999-12-31", "0000-01-01", "10000-01-01", "0001-01-01", "2024-02-30",
             ["2024-01-01", "9999-12-31"], "a\r\nb"],
}


#: hostile cookie and header values, as the bytes a client may send (a server passes
#: header bytes on as Latin-1)
HEADER_VALUES = ["", "x" * 8000, "acme\x00", "\u2603 \U0001d11e".encode().decode("latin-1"),
                 "\xff\xfe", "globex", "..%2f..%2f", "a; b=c", '"quoted"', str(2**63)]


@dataclass
class Upload:
    """A file to upload, made afresh for each request (a stream is read only once)."""

    content: bytes
    filename: str

    def file(self):
        return io.BytesIO(self.content), self.filename


FILE_VALUES = [Upload(b"\xff\xfe\x00\r\n.\r\nFrom: x\r\n\r\n\xff", "a\r\nb\x00\u2603.eml"),
               Upload(b"", ""), Upload(b"x" * 100_000, "x" * 300 + ".eml"),
               [Upload(b"1", "1.txt"), Upload(b"2", "2.txt")]]

#: what a person would type into a field the page leaves empty, so that the form gets past
#: its own checks and the one hostile field is what the code after them meets
PLAUSIBLE = {"sender": "alice@acme.test", "recipients": "pat@partner.test",
             "to": "pat@partner.test", "subject": "Quarterly figures", "body": "Numbers.",
             "name": "Fuzzed", "slug": "fuzzed", "domains": "fuzzed.test",
             "admin_email": "boss@fuzzed.test", "text": "Hello", "html": "<p>Hello</p>",
             "phrases": "secret", "to_pattern": "*@partner.test", "recipient": "all",
             "direction": "up", "visibility_days": "30", "activation_hours": "72",
             "code": "12345",  # five digits: never a valid code, so no factor is set up
             # a new password too short to be taken: no password changes, no reset link
             # is used up, so every request of the walk meets the same accounts
             "new": "short", "confirm": "short", "current": PASSWORD, "password": PASSWORD}

#: "request.args.get("x")", "form.get('x')"...: parameters views read by hand
_READ_BY_HAND = re.compile(r"""(?:args|form|values)\.get(?:list)?\(\s*["']([\w-]+)["']""")


def _refused(response) -> bool:
    """The view never ran for this role (so it read no parameter): refused, or sent to
    sign in first."""
    return response.status_code in (401, 403) or (
        response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/sign-in")


def read_anywhere() -> set[str]:
    """Every parameter name some code in app/ reads by hand."""
    source = Path(application_package.__file__).parent
    return {name for path in source.rglob("*.py")
            for name in _READ_BY_HAND.findall(path.read_text())}


def read_by(app, endpoint: str) -> set[str]:
    """The parameter names the endpoint's own view reads by hand."""
    view = inspect.unwrap(app.view_functions[endpoint])
    return set(_READ_BY_HAND.findall(inspect.getsource(view)))


# --- the world: one tenant with something of everything ------------------------------


@dataclass
class World:
    objects: dict[str, str]
    emails: dict[str, str]


def _message_with_attachment() -> bytes:
    message = EmailMessage()
    message["From"], message["Subject"] = "alice@acme.test", "Figures"
    message["To"] = "pat@partner.test, admin@acme.test, root@acme.test, alice@acme.test"
    message["Message-ID"] = "<fuzz@acme.test>"
    message.set_content("Numbers attached.")
    message.add_alternative('<p>Numbers <img src="cid:chart@acme.test"></p>', subtype="html")
    message.get_payload()[1].add_related(b"\x89PNG\r\n\x1a\nchart", "image", "png",
                                         cid="<chart@acme.test>")
    message.add_attachment(b"a,b\n1,2\n", "text", "csv", filename="figures.csv")
    return message.as_bytes().replace(b"\n", b"\r\n")


@pytest.fixture
def world(app, make_tenant, make_user) -> World:
    acme = make_tenant("acme", domains=["acme.test"])
    globex = make_tenant("globex", domains=["globex.test"])
    emails = {"visitor": "alice@acme.test", "external": "pat@partner.test",
              "internal": "alice@acme.test", "administrator": "admin@acme.test",
              "platform administrator": "root@acme.test"}
    make_user(acme, "admin@acme.test", role="admin")
    make_user(acme, "root@acme.test", role="admin", is_platform_admin=True)
    alice = make_user(acme, "alice@acme.test", role="internal")
    colleague = make_user(acme, "bob@acme.test", role="internal")
    pat = make_user(acme, "pat@partner.test")
    make_user(globex, "pat@partner.test")  # one password, two organisations: "which one?"
    with_factor = make_user(acme, "factor@acme.test", role="internal")
    secret = second_factor.new_secret()
    second_factor.enrol(with_factor, secret, pyotp.TOTP(secret).now())
    token = accounts.start_reset(make_user(acme, "reset@acme.test", role="internal"))
    passkey = Passkey(user=pat, tenant_id=acme.id, credential_id=b"id", user_handle=b"handle",
                      public_key=b"key", name="Phone")
    db.session.add_all([
        Policy(tenant=acme, position=0, name="Partners", kind="route",
               to_pattern="*@partner.test", phrases=[], where=["subject", "body"]),
        Policy(tenant=acme, position=1, name="Words", kind="content", phrases=["secret"],
               where=["subject", "body"]),
        ApplicationSettings(tenant=acme, name="Senders", portal_ccm=True, send_secure=True),
        passkey,
    ])
    message = ingest.receive(_message_with_attachment(), "alice@acme.test",
                             ["pat@partner.test", "admin@acme.test", "root@acme.test",
                              "alice@acme.test"], mode="all")
    draft = composing.save_draft(alice, None, to="pat@partner.test", cc="", subject="Draft",
                                 body="Unfinished", mode="off")
    db.session.commit()
    objects = {"slug": "acme", "token": token, "public_id": message.public_id,
               "draft": draft.public_id, "number": "1", "user_id": str(colleague.id),
               "policy_id": str(acme.policies[0].id),
               "profile_id": str(acme.application_settings[-1].id),
               "domain_id": str(acme.domains[0].id),  # verified: Check now asks no DNS
               "kind": "secure_message", "filename": "css/ccm.css",
               "passkey_id": str(passkey.id)}
    return World(objects, emails)


def unlock_everyone() -> None:
    """The walk's wrong passwords and codes lock accounts: each request starts unlocked,
    so that a plausible sign-in still gets through to what follows it."""
    if db.session.scalar(select(User.id).where(User.failed_signins > 0).limit(1)):
        db.session.execute(update(User).values(failed_signins=0, locked_until=None))
        db.session.commit()


def path_values(world: World, endpoint: str) -> dict[str, str]:
    values = dict(world.objects)
    if endpoint == "compose.delete_draft":
        values["public_id"] = values["draft"]
    return values


def fill(rule, values: dict[str, str]) -> str:
    """The rule's path with each parameter replaced by its (URL-spelled) value."""
    def value(match):
        name = match.group(1)
        if name not in values:
            raise KeyError(f"{rule.rule}: no value for the path parameter {name!r}: "
                           "add a real object of that kind to the world")
        return values[name]
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", value, rule.rule)


# --- reading the forms a page offers ---------------------------------------------------


@dataclass
class Field:
    kind: str  # "text", "number", "date", "file" or "choice"
    values: list = field(default_factory=list)
    #: a choice's first option, sent when none is marked (as a browser does for a select)
    first: str | None = None


@dataclass
class Form:
    method: str
    target: str
    fields: dict[str, Field] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)
    htmx_target: str | None = None


_VOID = {"input", "br", "img", "meta", "link", "hr", "source", "area", "col", "wbr"}


class FormReader(HTMLParser):
    """Every form on a page, and every element that posts with htmx (with what it
    includes from elsewhere on the page), with each field's name, kind and value."""

    def __init__(self, page_path: str):
        super().__init__(convert_charrefs=True)
        self.page_path = page_path
        self.forms: list[Form] = []
        self.open: list[tuple[str, Form | None]] = []
        self.select: str | None = None
        self.textarea: str | None = None

    def _fields(self, name: str, kind: str) -> list[Field]:
        return [form.fields.setdefault(name, Field(kind))
                for _, form in self.open if form is not None]

    def handle_starttag(self, tag, attrs):
        attrs = {key: value or "" for key, value in attrs}
        form = None
        if tag == "form" or "hx-post" in attrs:
            target = attrs.get("hx-post") or attrs.get("action") or self.page_path
            method = "post" if "hx-post" in attrs else (attrs.get("method") or "get").lower()
            hx_target = attrs.get("hx-target", "")
            element = hx_target[1:] if hx_target.startswith("#") else \
                attrs.get("id") if hx_target == "this" else None
            form = Form(method.upper(), urlsplit(target).path, htmx_target=element,
                        includes=re.findall(r"\[name='([^']+)'\]", attrs.get("hx-include", "")))
            self.forms.append(form)
        if tag not in _VOID:
            self.open.append((tag, form))
        name = attrs.get("name")
        if tag == "input" and name:
            kind = attrs.get("type", "text")
            if kind in ("checkbox", "radio"):
                for entry in self._fields(name, "choice"):
                    entry.first = entry.first if entry.first is not None else \
                        (attrs.get("value", "on") if kind == "radio" else None)
                    if "checked" in attrs:
                        entry.values.append(attrs.get("value", "on"))
            elif kind not in ("submit", "button", "reset", "image"):
                kind = kind if kind in ("number", "date", "file") else "text"
                for entry in self._fields(name, kind):
                    entry.values.append(attrs.get("value", ""))
        elif tag == "select" and name:
            self.select = name
            self._fields(name, "choice")
        elif tag == "option" and self.select:
            for entry in self._fields(self.select, "choice"):
                entry.first = entry.first if entry.first is not None else attrs.get("value")
                if "selected" in attrs:
                    entry.values.append(attrs.get("value", ""))
        elif tag == "textarea" and name:
            self.textarea = name
            for entry in self._fields(name, "text"):
                entry.values.append("")

    def handle_data(self, data):
        if self.textarea:
            for entry in self._fields(self.textarea, "text"):
                entry.values[-1] += data

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None
        if tag == "textarea":
            self.textarea = None
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index][0] == tag:
                del self.open[index:]
                break


def read_forms(page: str, page_path: str) -> list[Form]:
    reader = FormReader(page_path)
    reader.feed(page)
    everything = {n: f for form in reader.forms for n, f in form.fields.items()}
    for form in reader.forms:
        for name in form.includes:  # an htmx element posting other elements' fields
            if name in everything:
                form.fields.setdefault(name, everything[name])
    return reader.forms


# --- the walk ---------------------------------------------------------------------------


@dataclass
class Walk:
    app: object
    world: World
    role: str
    failures: dict[tuple, str] = field(default_factory=dict)
    sent: int = 0
    current: object = None
    signed_in_as: tuple | None = None
    #: endpoints whose view ran for this role, and (endpoint, field) pairs tried there
    reached: set[str] = field(default_factory=set)
    tried: set[tuple[str, str]] = field(default_factory=set)

    # browsers

    def session_of(self, browser) -> tuple | None:
        """Whom the browser is signed in as, and what sign-in it has half done."""
        cookie = browser.get_cookie(self.app.config["SESSION_COOKIE_NAME"])
        if cookie is None:
            return None
        session = self.app.session_interface.get_signing_serializer(self.app).loads(
            cookie.value)
        user = db.session.scalar(select(AuthSession.user_id).where(
            AuthSession.token_digest == tokens.digest(session.get("_user_id") or ""),
            AuthSession.ended_at.is_(None)))
        return user, session.get("factor"), session.get("choose")

    def browser(self):
        """This role's browser, or a new one when a route changed whom it is signed in as
        (a sign-in, a sign-out): every route starts from the same place."""
        if self.current is None or self.session_of(self.current) != self.signed_in_as:
            self.current = self.new_browser()
            self.signed_in_as = self.session_of(self.current)
        return self.current

    def new_browser(self):
        """A new browser as this role, with a CSRF token for its session."""
        unlock_everyone()
        browser = self.app.test_client()
        if self.role == "visitor":
            # half-way through two sign-ins: a code to give, an organisation to choose
            for email in ("factor@acme.test", "pat@partner.test"):
                response = post_form(browser, "/sign-in", {"email": email,
                                                           "password": PASSWORD})
                assert response.status_code == 302, email
        else:
            response = post_form(browser, "/t/acme/sign-in", {
                "email": self.world.emails[self.role], "password": PASSWORD})
            assert "/sign-in" not in response.headers.get("Location", "/sign-in"), \
                (self.role, response.get_data(as_text=True)[:3000])
        browser.token = csrf_token(browser, "/sign-in")
        return browser

    # sending, and recording what fails

    def send(self, browser, method: str, url: str, what: str, params: dict, **options):
        """Send one request (see :meth:`_open` for the options); record it if it fails."""
        self.sent += 1
        unlock_everyone()
        try:
            response = self._open(browser, method, url, params, **options)
            if method == "POST" and response.status_code == 400 and \
                    b"This form has expired" in response.data:
                # the request before changed the session (a sign-in): a browser reloads
                browser.token = csrf_token(browser, "/sign-in")
                response = self._open(browser, method, url, params, **options)
        except Exception as error:  # every failure is recorded, and all are listed at the end
            frames = traceback.format_exception(error)
            self._failed(method, url, what, type(error).__name__ + ": " + str(error)[:200],
                         "".join(frames[-6:]))
            return None
        response.close()  # a file sent whole (static, downloads) is closed here
        if response.status_code >= 500:
            self._failed(method, url, what, f"status {response.status_code}", "")
        return response

    def _open(self, browser, method: str, url: str, params: dict, *,
              query: dict | str | None = None, body: bytes | None = None,
              path_info: str | None = None, htmx_target: str | None = None,
              environ: dict | None = None):
        """``params`` in the query of a GET or the body of a POST (with the CSRF token);
        or ``body`` as the raw body; ``path_info`` as the raw path a server decoded;
        every other request as htmx sends it."""
        headers = {}
        if self.sent % 2:
            headers["HX-Request"] = "true"
            if htmx_target:
                headers["HX-Target"] = htmx_target
        overrides = dict(environ or {})
        if path_info is not None:
            overrides["PATH_INFO"] = path_info
        if method == "GET":
            return browser.get(url, query_string=params if query is None else query,
                               headers=headers, environ_overrides=overrides)
        token = getattr(browser, "token", "")
        if body is not None:
            return browser.post(url, query_string=query, headers=headers,
                                environ_overrides=overrides,
                                data=b"csrf_token=" + token.encode() + b"&" + body,
                                content_type="application/x-www-form-urlencoded")
        return browser.post(url, query_string=query, headers=headers,
                            environ_overrides=overrides,
                            data={**_materialised(params), "csrf_token": token})

    def _failed(self, method, url, what, problem, trace):
        key = (method, url[:80], what.partition("=")[0], problem)
        self.failures.setdefault(key, f"{self.role}: {method} {url[:120]} with {what}: "
                                      f"{problem}\n{trace}")

    def cookies_and_headers(self) -> None:
        """Each cookie the portal sets, and the headers it reads, hostile: on the pages
        that read them (signing in, the inbox, opening a message)."""
        browser = self.browser()
        names = {self.app.config["SESSION_COOKIE_NAME"], LAST_TENANT_COOKIE}
        jar = {n: browser.get_cookie(n).value for n in names if browser.get_cookie(n)}
        pages = ["/sign-in", "/t/acme/sign-in", "/inbox/",
                 f"/inbox/{self.world.objects['public_id']}"]
        for name in sorted(names):
            for value in HEADER_VALUES:
                cookie = "; ".join(f"{n}={v}" for n, v in {**jar, name: value}.items())
                for page in pages:
                    self.send(self.app.test_client(use_cookies=False), "GET", page,
                              f"the cookie {name}={_short(value)}", {},
                              environ={"HTTP_COOKIE": cookie})
        for value in HEADER_VALUES:
            environ = {f"HTTP_{name}": value for name in
                       ("USER_AGENT", "HX_TARGET", "HX_CURRENT_URL", "ACCEPT_LANGUAGE")}
            for page in pages:
                self.send(self.browser(), "GET", page, f"the headers={_short(value)}", {},
                          environ={**environ, "HTTP_HX_REQUEST": "true"})
            self.send(self.browser(), "POST", "/t/acme/sign-in", f"the headers={_short(value)}",
                      {"email": self.world.emails[self.role], "password": PASSWORD},
                      environ=environ)

    # crawling the role's pages for their forms

    def crawl(self) -> dict[tuple[str, str], Form]:
        """The forms this role's pages offer, by (method, path) they are sent to."""
        browser = self.browser()
        forms: dict[tuple[str, str], Form] = {}
        for rule in self.app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint == "static":
                continue
            url = fill(rule, path_values(self.world, rule.endpoint))
            response = browser.get(url, follow_redirects=True)
            if response.status_code >= 500 or "html" not in response.content_type:
                continue
            for form in read_forms(response.get_data(as_text=True), url):
                merged = forms.setdefault((form.method, form.target), form)
                for name, entry in form.fields.items():
                    merged.fields.setdefault(name, entry)
        return forms

    # one route and method

    def route(self, rule, method: str, forms, anywhere: set[str]) -> None:
        """Every hostile value this route and method take, as this role."""
        self.path_parameters(rule, method)
        url = fill(rule, path_values(self.world, rule.endpoint))
        form = forms.get((method, url)) or Form(method, url)
        fields = {n: f for n, f in form.fields.items() if n != "csrf_token"}
        by_hand = read_by(self.app, rule.endpoint) - set(fields)
        fields.update({name: Field(COMMON_NAMES.get(name, "text")) for name in by_hand})
        plain = {n: _plausible(n, f, self.world.emails[self.role]) for n, f in fields.items()}
        response = self.send(self.browser(), method, url, "the form as the page offers it",
                             plain, htmx_target=form.htmx_target)
        if response is None or _refused(response):
            return  # refused before any parameter was read
        self.reached.add(rule.endpoint)
        for name, entry in fields.items():
            self.tried.add((rule.endpoint, name))
            for value in _values_for(entry, plain[name]):
                # a name the view reads by hand may be read from the query of a POST too
                query = {name: value} if method == "POST" and name in by_hand else None
                self.send(self.browser(), method, url, f"{name}={_short(value)}",
                          {**plain, name: value}, query=query, htmx_target=form.htmx_target)
        self.every_name_at_once(method, url, form, plain,
                                sorted((set(COMMON_NAMES) | anywhere) - set(fields)))

    def path_parameters(self, rule, method: str) -> None:
        """Each path parameter in turn hostile, the others naming a real object."""
        valid = path_values(self.world, rule.endpoint)
        for name in sorted(rule.arguments):
            converter = re.search(rf"<(?:(\w+)(?:\([^)]*\))?:)?{name}>", rule.rule).group(1)
            number = issubclass(self.app.url_map.converters[converter or "default"],
                                IntegerConverter)
            for value in PATH_VALUES["number" if number else "text"]:
                url = fill(rule, {**valid, name: value})
                self.send(self.browser(), method, url, f"{name}={value[:40]!r}", {},
                          path_info=unquote_to_bytes(url).decode("latin-1"))

    def every_name_at_once(self, method: str, url: str, form: Form, plain: dict,
                           others: list[str]) -> None:
        """The names no field declares, all hostile at once (in the query and the body),
        then every name at once as bytes that are not UTF-8."""
        for index in range(len(AT_ONCE["text"])):
            hostile = {n: AT_ONCE[COMMON_NAMES.get(n, "text")][index] for n in others}
            self.send(self.browser(), method, url, f"{', '.join(others)}: value {index} of "
                      "AT_ONCE", {**plain, **hostile},
                      query=hostile if method == "POST" else None,
                      htmx_target=form.htmx_target)
        names = sorted({*plain, *others})
        raw = b"&".join(n.encode() + b"=\xff\xfe\xc3\x28" for n in names)
        quoted = "&".join(n + "=%ff%fe%c3%28" for n in names)
        self.send(self.browser(), method, url, "bytes that are not UTF-8", {}, query=quoted,
                  body=raw if method == "POST" else None)


def _plausible(name: str, entry: Field, email: str):
    """What a browser would send for the field as the page shows it, or what a person
    would type into it where the page leaves it empty."""
    if entry.kind == "file":
        return None
    given = [v for v in entry.values if v != ""]
    if len(given) > 1:
        return given
    if given:
        return given[0]
    if entry.kind == "choice" and entry.first is not None and not entry.values:
        return entry.first
    return email if name == "email" else PLAUSIBLE.get(name, "")


def _values_for(entry: Field, plain) -> list:
    """The table for the field's kind, and its plausible value with a line break after it
    (which a pattern ending in "$" lets through)."""
    if entry.kind == "file":
        return FILE_VALUES
    table = {"number": NUMBER_VALUES, "date": DATE_VALUES}.get(entry.kind, TEXT_VALUES)
    if isinstance(plain, str) and plain:
        return [*table, plain + "\n", plain + "\r\nBcc: evil@example.test"]
    return table


def _materialised(params: dict) -> dict:
    """Form data for the test client: files opened afresh, absent values left out."""
    data = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, list):
            data[name] = [v.file() if isinstance(v, Upload) else v for v in value]
        else:
            data[name] = value.file() if isinstance(value, Upload) else value
    return data


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 50 else text[:40] + f"...({len(text)} characters)"


#: endpoints whose effects would spoil the routes after them, walked last: a sign-out,
#: a deleted policy, and a DKIM key (the settings page parses it on every view: slow)
_LAST = ("auth.sign_out", "admin.delete_policy", "admin.dkim_key")


def routes(app):
    ordered = sorted(app.url_map.iter_rules(),
                     key=lambda rule: (rule.endpoint in _LAST, rule.endpoint, rule.rule))
    for rule in ordered:
        for method in ("GET", "POST"):
            if method in rule.methods:
                yield rule, method


#: what each role's walk must get through to, besides every page of its own blueprint:
#: the proof that the walk reaches the views rather than being turned away at the door
MUST_REACH = {
    "visitor": {"auth.sign_in", "auth.code", "auth.choose_account", "auth.forgot_password",
                "auth.reset_password", "static"},
    "external": {"inbox.index", "inbox.message", "inbox.body", "inbox.attachment",
                 "inbox.inline", "inbox.reply", "auth.enrol", "auth.change_password",
                 "auth.activity"},
    "internal": {"compose.compose", "compose.save_draft", "compose.drafts",
                 "compose.delete_draft", "compose.sent", "compose.sent_message",
                 "compose.revoke", "inbox.reply"},
}
#: fields where outside reviews found a 500: the walk must have tried each
MUST_TRY = {
    "visitor": {("auth.sign_in", "next"), ("auth.sign_in", "email"), ("auth.code", "code")},
    "administrator": {("admin.tester", "subject"), ("admin.tracking", "since"),
                      ("admin.tracking", "until"), ("admin.people_list", "q"),
                      ("admin.settings", "mail_from")},
    "internal": {("compose.compose", "attachments"), ("compose.compose", "subject"),
                 ("compose.save_draft", "body"), ("inbox.index", "page")},
}


def must_reach(app, role: str) -> set[str]:
    if role not in ("administrator", "platform administrator"):
        return MUST_REACH[role]
    console = {rule.endpoint for rule in app.url_map.iter_rules()
               if rule.endpoint.startswith("admin.")}
    if role == "administrator":
        console -= {"admin.tenants", "admin.new_tenant"}  # the platform administrator's
    return console


@pytest.mark.parametrize("app", [{"PROPAGATE_EXCEPTIONS": True}], indirect=True)
@pytest.mark.parametrize("role", ROLES)
def test_no_input_gives_a_server_error(app, client, world, role):
    walk = Walk(app, world, role)
    forms = walk.crawl()
    walk.cookies_and_headers()
    anywhere = read_anywhere()
    assert {"next", "q", "page", "direction", "all"} <= anywhere
    walked = 0
    for rule, method in routes(app):
        walk.route(rule, method, forms, anywhere)
        walked += 1
    assert walked >= 60, "url_map has lost routes, or this walk no longer finds them"
    assert not must_reach(app, role) - walk.reached, "the walk was turned away"
    assert not MUST_TRY.get(role, set()) - walk.tried, "the walk missed these fields"
    assert not walk.failures, f"{len(walk.failures)} requests failed:\n\n" + \
        "\n".join(walk.failures.values())


#: what an outside review sent, and the answer each must get: (path, form, status, words)
REVIEWED = [
    ("/admin/people/99999999999999999999", None, 404, "Not found"),
    ("/admin/people/9223372036854775808", None, 404, "Not found"),
    ("/admin/people/2147483648", None, 404, "Not found"),  # past PostgreSQL's integer
    ("/admin/people/2147483647", None, 404, "Not found"),  # the largest: asked, not there
    ("/admin/tracking?since=9999-12-31&until=9999-12-31", None, 200,
     "Use a date between the years 1900 and 2999."),
    ("/admin/tracking?since=0001-01-01", None, 200, "Use a date between the years"),
    ("/admin/tracking?until=10000-01-01", None, 200, "Not a valid date value."),
    ("/admin/people?q=" + "x" * 100_000, None, 200, "People"),
    ("/admin/policies/test", {"sender": "alice@acme.test", "recipients": "pat@partner.test",
                              "subject": "Hello\r\nBcc: evil@example.test", "body": "x",
                              "mode": ""}, 200, "Use one line of text"),
    ("/compose/", {"to": "pat@partner.test", "subject": "Hello\nBcc: evil@example.test",
                   "body": "x", "mode": "off"}, 200, "Use one line of text"),
    ("/compose/", {"to": "pat@partner.test", "subject": "Hello", "body": "x",
                   "attachments": "not a file"}, 302, ""),  # no file: sent without one
    # NUL: PostgreSQL cannot compare text holding one, so it never reaches a query
    ("/inbox/?q=a%00b", None, 400, "Something in that request was not right"),
    ("/t/acme%00/sign-in", None, 400, "Something in that request was not right"),
    ("/compose/draft", {"to": "pat@partner.test", "body": "a\x00b"}, 400,
     "Something in that request was not right"),
]


@pytest.mark.parametrize(("path", "form", "status", "words"), REVIEWED)
def test_what_the_review_sent_gets_a_clear_answer(app, client, auth, world, path, form,
                                                   status, words):
    auth.sign_in("admin@acme.test", slug="acme")
    response = post_form(client, path, form) if form else client.get(path)
    assert response.status_code == status
    assert words in response.get_data(as_text=True)


def test_a_notification_sender_with_a_line_break_is_refused(app, client, auth, world):
    """An address pattern ending in "$" lets a trailing line break through; the mail
    header the address ends up in must not get it."""
    auth.sign_in("admin@acme.test", slug="acme")
    page = client.get("/admin/settings").get_data(as_text=True)
    form = {f.target: f for f in read_forms(page, "/admin/settings")}["/admin/settings"]
    data = {name: _plausible(name, entry, "admin@acme.test")
            for name, entry in form.fields.items() if entry.kind != "file"}
    response = post_form(client, "/admin/settings",
                         {**data, "mail_from": "notices@acme.test\n"})
    assert "Use one line of text" in response.get_data(as_text=True)
    assert db.session.scalar(select(Tenant.mail_from).where(Tenant.slug == "acme")) is None
