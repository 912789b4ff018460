"""Making received HTML safe to show: bleach with an allowlist, then our own rewrites.

Only the tags, attributes, CSS properties and URL schemes listed here survive. Links
open outside the portal without a referrer; a link whose address was removed (a
``javascript:`` one, say) or goes nowhere a reader can follow becomes plain text, so
it does not look clickable; ``cid:`` images point at the message's own
parts; remote images are replaced by a placeholder unless the reader asked for them.
The framed page that shows the result also carries a CSP that blocks what slips past.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from html import escape

from bleach.css_sanitizer import CSSSanitizer
from bleach.html5lib_shim import Filter
from bleach.linkifier import Linker
from bleach.sanitizer import Cleaner

TAGS = frozenset({
    "a", "abbr", "address", "b", "big", "blockquote", "br", "caption", "center", "cite",
    "code", "col", "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em", "font", "h1",
    "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p",
    "pre", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var",
})
_COMMON = ["style", "title", "dir", "lang", "align", "valign", "class"]
ATTRIBUTES = {
    "*": _COMMON,
    "a": [*_COMMON, "href", "name"],
    "img": [*_COMMON, "src", "alt", "width", "height", "border"],
    "font": [*_COMMON, "color", "face", "size"],
    "table": [*_COMMON, "width", "border", "cellpadding", "cellspacing", "bgcolor"],
    "td": [*_COMMON, "width", "height", "colspan", "rowspan", "bgcolor", "nowrap"],
    "th": [*_COMMON, "width", "height", "colspan", "rowspan", "bgcolor", "nowrap"],
    "col": [*_COMMON, "width", "span"],
    "ol": [*_COMMON, "start", "type"],
}
#: data: is refused everywhere: it can carry HTML, script or SVG into a new context.
PROTOCOLS = frozenset({"http", "https", "mailto", "cid"})
CSS_PROPERTIES = frozenset({
    "background-color", "border", "border-bottom", "border-collapse", "border-color",
    "border-left", "border-radius", "border-right", "border-spacing", "border-style",
    "border-top", "border-width", "color", "direction", "display", "font", "font-family",
    "font-size", "font-style", "font-variant", "font-weight", "height", "letter-spacing",
    "line-height", "list-style-type", "margin", "margin-bottom", "margin-left",
    "margin-right", "margin-top", "max-width", "min-width", "padding", "padding-bottom",
    "padding-left", "padding-right", "padding-top", "text-align", "text-decoration",
    "text-indent", "text-transform", "vertical-align", "white-space", "width",
    "word-break", "word-spacing",
})
BLOCKED_IMAGE = "/static/img/remote-image-blocked.svg"
#: the schemes a link keeps (a cid: or relative address leads nowhere from the frame)
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
#: what a link whose address was removed says when the reader points at it
LINK_REMOVED = "Link removed: its address was not safe to open"


class _Rewrite(Filter):
    """Links open outside; cid: images come from the message; remote images are held back."""

    def __init__(self, source, *, cid_url: Callable[[str], str | None], allow_remote: bool,
                 found_remote: list):
        super().__init__(source)
        self.cid_url = cid_url
        self.allow_remote = allow_remote
        self.found_remote = found_remote

    def __iter__(self):
        links: list[bool] = []  # for each <a> open: whether it stays a link
        for token in super().__iter__():
            if token["type"] in ("StartTag", "EmptyTag"):
                attributes = token["data"]
                if token["name"] == "a":
                    href = attributes.get((None, "href"), "").strip()
                    link = href.startswith("#") or _followable(href)
                    if token["type"] == "StartTag":
                        links.append(link or (None, "name") in attributes)
                    if link:
                        attributes[(None, "target")] = "_blank"
                        attributes[(None, "rel")] = "noopener noreferrer"
                    else:
                        token = _plain_text(token)
                if token["name"] == "img":
                    self._image(attributes)
            elif token["type"] == "EndTag" and token["name"] == "a" and links \
                    and not links.pop():
                token = {**token, "name": "span"}
            yield token

    def _image(self, attributes: dict) -> None:
        # HTML requires an alt; the sender gave none, so the image says nothing more.
        attributes.setdefault((None, "alt"), "")
        source = attributes.get((None, "src"), "")
        if source.lower().startswith("cid:"):
            local = self.cid_url(source[4:].strip("<>"))
            if local:
                attributes[(None, "src")] = local
            else:
                attributes.pop((None, "src"), None)
        elif source:
            self.found_remote.append(source)
            if not self.allow_remote:
                attributes[(None, "src")] = BLOCKED_IMAGE
                attributes[(None, "title")] = "Remote image blocked"
                described = attributes.get((None, "alt"), "").strip()
                attributes[(None, "alt")] = "Remote image blocked" + (
                    f": {described}" if described else "")


def _followable(href: str) -> bool:
    """Whether an address the allowlist let through is one a reader can follow."""
    scheme, colon, _ = href.partition(":")
    return bool(colon) and scheme.lower() in LINK_SCHEMES


def _plain_text(token: dict) -> dict:
    """A link that leads nowhere, with no style of its own: its text alone, neither
    underlined nor with a pointer, whatever the sender's style said. A named anchor
    (``<a name>``, a place other links lead to) stays one; anything else is a span."""
    kept = {key: value for key, value in token["data"].items()
            if key in ((None, "dir"), (None, "lang"), (None, "name"))}
    if (None, "name") in kept:
        return {**token, "data": kept}
    kept[(None, "title")] = LINK_REMOVED
    return {**token, "name": "span", "data": kept}


# Elements whose text a browser never shows. Removing them first only spares the reader
# their leftover text; safety comes from the allowlist, which escapes whatever this misses.
_INVISIBLE = ("script", "style", "title", "head", "template", "textarea", "xmp", "noembed",
              "noframes", "noscript")
_OPENING = re.compile(r"<(" + "|".join(_INVISIBLE) + r")\b[^<>]{0,2000}>", re.IGNORECASE)


def _drop_invisible(html: str) -> str:
    """Remove invisible elements with their text, in one pass (no backtracking: a
    message full of unclosed <style> tags must not cost quadratic time)."""
    lowered = html.lower()
    kept, position, unclosed = [], 0, set()
    for opening in _OPENING.finditer(html):
        name = opening.group(1).lower()
        if opening.start() < position or name in unclosed:
            continue
        closing = lowered.find(f"</{name}", opening.end())
        if closing == -1:
            unclosed.add(name)  # no later one of these closes either
            continue
        end = lowered.find(">", closing)
        kept.append(html[position:opening.start()])
        position = len(html) if end == -1 else end + 1
    kept.append(html[position:])
    return "".join(kept)


class _CSS(CSSSanitizer):
    """bleach checks property names only; drop declarations whose value could fetch or run
    something (url(), image-set(), IE's expression(), behaviours, bindings)."""

    _HAZARDS = ("url(", "image-set(", "expression(", "behavior", "binding", "javascript:")

    def sanitize_css(self, style: str) -> str:
        cleaned = super().sanitize_css(style)
        declarations = [d for d in cleaned.split(";") if d.strip()]
        safe = [d for d in declarations
                if not any(h in re.sub(r"/\*.*?\*/|\s", "", d.lower()) for h in self._HAZARDS)]
        return "".join(f"{d.strip()};" for d in safe)


def clean_html(html: str, *, cid_url: Callable[[str], str | None] = lambda _: None,
               allow_remote: bool = False, tags: frozenset[str] = TAGS,
               attributes: dict[str, list[str]] = ATTRIBUTES,
               css_properties: frozenset[str] = CSS_PROPERTIES) -> tuple[str, bool]:
    """(safe HTML, whether it referred to remote images). A narrower allowlist
    (``tags``, ``attributes``, ``css_properties``) serves text written in the portal."""
    found: list = []
    cleaner = Cleaner(
        tags=tags,
        attributes=attributes,
        protocols=PROTOCOLS,
        css_sanitizer=_CSS(allowed_css_properties=css_properties),
        strip=True,
        strip_comments=True,
        filters=[partial(_Rewrite, cid_url=cid_url, allow_remote=allow_remote,
                         found_remote=found)],
    )
    return cleaner.clean(_drop_invisible(html)), bool(found)


# --- text written in the portal's editor ------------------------------------------------
# Only what its toolbar makes: bold, italic, lists, links and quotes, in paragraphs. No
# style, class or image: whatever else a paste or a forged request carries is dropped.
COMPOSED_TAGS = frozenset({"a", "b", "blockquote", "br", "div", "em", "i", "li", "ol", "p",
                           "strong", "ul"})
COMPOSED_ATTRIBUTES = {"a": ["href"]}


def clean_composed(html: str) -> str:
    """HTML from the portal's editor, as safe as received mail and narrower still."""
    return clean_html(html, tags=COMPOSED_TAGS, attributes=COMPOSED_ATTRIBUTES,
                      css_properties=frozenset())[0]


def _external_links(attrs, new=False):
    attrs[(None, "target")] = "_blank"
    attrs[(None, "rel")] = "noopener noreferrer"
    return attrs


#: longer text is escaped but its addresses are not made links: the linkifier parses the
#: text as HTML, which takes seconds on some text of a few hundred kilobytes
LINKIFY_LIMIT = 100 * 1024


def text_to_html(text: str) -> str:
    """Plain text, escaped, with web and mail addresses made links (line breaks kept by CSS)."""
    if len(text) > LINKIFY_LIMIT:
        return escape(text)
    return Linker(callbacks=[_external_links], parse_email=True).linkify(escape(text))
