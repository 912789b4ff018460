"""Making received HTML safe to show: bleach with an allowlist, then our own rewrites.

Only the tags, attributes, CSS properties and URL schemes listed here survive. Links
open outside the portal without a referrer; a link whose address was removed (a
``javascript:`` one, say) or goes nowhere a reader can follow becomes plain text, so
it does not look clickable; ``cid:`` images point at the message's own
parts; remote images are replaced by a placeholder unless the reader asked for them.
The framed page that shows the result also carries a CSP that blocks what slips past.

What the sender hid with inline style (``display:none``, a tiny font, no opacity, ...)
is removed here, not left for the browser to hide: the frame and every text of the body
(``visible_text`` for printing and no script, ``rich_text.html_as_text`` for conversations
and reply quotes) come from this one tree, so they agree, and a reply never quotes words
its writer was never shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from html import escape, unescape

import tinycss2
from bleach.css_sanitizer import CSSSanitizer
from bleach.html5lib_shim import Filter
from bleach.linkifier import Linker
from bleach.sanitizer import Cleaner

from app.mail import mime

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


# --- What the sender hid --------------------------------------------------------------
# One rule, read from inline style only: <style> blocks and classes are removed above,
# so nothing else can hide an element in the frame. Phishing hides words from the reader
# that a filter still reads, and newsletters hide a preheader meant for the inbox list:
# neither belongs on the screen, on paper or in a quote.

#: text smaller than this many CSS pixels cannot be read
TINY_FONT_PX = 3.0
#: an element this transparent (its own opacity times its ancestors') cannot be seen
FAINT_OPACITY = 0.1
#: an element moved this many pixels off the page is not on it
OFF_PAGE_PX = 1000.0
_ROOT_FONT_PX = 16.0
_LENGTH = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(px|pt|pc|em|rem|%|ex|ch|in|cm|mm|q)?")
#: pixels per unit of an absolute length
_ABSOLUTE = {"px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54,
             "mm": 96 / 25.4, "q": 96 / 101.6}


def style_of(style: str) -> dict[str, str]:
    """An inline style's declarations as a browser reads them, {property: value}: parsed
    by tinycss2 as bleach parses them (so ``d\\isplay:n\\one`` is display: none), names and
    keywords lower-cased, the last of a property winning unless an earlier one is
    ``!important``. The font shorthand's size is read as font-size."""
    declarations: dict[str, str] = {}
    important: set[str] = set()
    for declaration in tinycss2.parse_declaration_list(style, skip_comments=True,
                                                       skip_whitespace=True):
        if declaration.type != "declaration":
            continue
        name, value = declaration.lower_name, _value(declaration.value)
        if name == "font":
            name, value = "font-size", _font_size(declaration.value)
        if value is None or (name in important and not declaration.important):
            continue
        declarations[name] = value
        if declaration.important:
            important.add(name)
    return declarations


def _value(tokens) -> str:
    """A declaration's value, its keywords lower-cased and its blanks single spaces."""
    words = []
    for token in tokens:
        if token.type == "whitespace":
            continue
        if token.type == "ident":
            words.append(token.lower_value)
        elif token.type == "dimension":
            words.append(f"{token.representation}{token.lower_unit}")
        elif token.type == "percentage":
            words.append(f"{token.representation}%")
        else:
            words.append(token.serialize().lower())
    return " ".join(words)


def _font_size(tokens) -> str | None:
    """The size in a font shorthand ("bold 0/0 a", "12px Arial"): its first length,
    percentage or bare 0 (a bare number before it is a weight)."""
    for token in tokens:
        if token.type in ("dimension", "percentage") or (
                token.type == "number" and token.value == 0):
            return _value([token])
    return None


def _pixels(value: str, font_px: float) -> float | None:
    """A CSS length in pixels (em and % of ``font_px``); None when it is not one."""
    match = _LENGTH.fullmatch(value)
    if match is None:
        return None
    number, unit = float(match.group(1)), match.group(2) or "px"
    if match.group(2) is None and number:
        return None  # a bare number is no length (the frame is in standards mode)
    if unit in _ABSOLUTE:
        return number * _ABSOLUTE[unit]
    if unit == "rem":
        return number * _ROOT_FONT_PX
    if unit == "%":
        return number * font_px / 100
    return number * font_px * (0.5 if unit in ("ex", "ch") else 1.0)


def _at_most(css: dict[str, str], names: tuple[str, ...], limit: float,
             font_px: float) -> bool:
    return any((size := _pixels(css.get(name, ""), font_px)) is not None and size <= limit
               for name in names)


@dataclass(frozen=True)
class Seen:
    """How an element's text is seen, as its children inherit it."""

    font_px: float = _ROOT_FONT_PX
    opacity: float = 1.0
    visible: bool = True  # visibility, which a child may set back to visible

    @property
    def readable(self) -> bool:
        return self.visible and self.font_px >= TINY_FONT_PX


#: a property seen_inside reads, or an escape that could spell one
_MAY_HIDE = re.compile(r"display|visibility|opacity|font|overflow|position|mso-hide|\\",
                       re.IGNORECASE)


@lru_cache(maxsize=4096)  # mail repeats a few styles thousands of times
def seen_inside(outer: Seen, style: str, *, hidden: bool = False) -> Seen | None:
    """How the contents of an element with this inline style are seen inside ``outer``;
    None when the element and all it holds are hidden (display, opacity, a zero box with
    its overflow hidden, moved off the page, the ``hidden`` attribute, Outlook's mso-hide)."""
    if not hidden and not _MAY_HIDE.search(style):
        return outer  # the usual case, without parsing: no property the rule reads
    css = style_of(style)
    if hidden or css.get("display") == "none" or css.get("mso-hide") == "all":
        return None
    opacity = outer.opacity
    if (match := _LENGTH.fullmatch(css.get("opacity", ""))) is not None:
        opacity *= float(match.group(1)) / (100 if match.group(2) == "%" else 1)
    if opacity < FAINT_OPACITY:
        return None
    font_px = _font_px(css.get("font-size", ""), outer.font_px)
    clipped = any(css.get(name) == "hidden" for name in ("overflow", "overflow-x", "overflow-y"))
    if clipped and _at_most(css, ("height", "max-height", "width", "max-width"), 1, font_px):
        return None  # a box of a pixel or none, showing nothing beyond it
    if css.get("position") in ("absolute", "fixed", "relative") and _at_most(
            css, ("left", "top", "right", "margin-left", "margin-top", "text-indent"),
            -OFF_PAGE_PX, font_px):
        return None
    visible = outer.visible
    if css.get("visibility") in ("hidden", "collapse"):
        visible = False
    elif css.get("visibility") == "visible":
        visible = True
    return Seen(font_px, opacity, visible)


def _font_px(value: str, outer_px: float) -> float:
    """The font size ``value`` sets inside an element whose font is ``outer_px``."""
    relative = {"smaller": 5 / 6, "larger": 6 / 5}
    if value in relative:
        return outer_px * relative[value]
    size = _pixels(value, outer_px)
    return outer_px if size is None else size


class _Hidden(Filter):
    """Leaves out what the sender hid: a hidden element with all it holds; text set too
    small or invisible (a child may show its own: a zero font-size on a table is a common
    way to close gaps between columns, whose cells set their own); images set invisible."""

    def __iter__(self):
        seen, outer, skipping = Seen(), [], 0
        for token in super().__iter__():
            kind = token["type"]
            if skipping:
                skipping += {"StartTag": 1, "EndTag": -1}.get(kind, 0)
                continue
            if kind in ("StartTag", "EmptyTag"):
                attributes = token["data"]
                # bleach leaves entities in attributes; a browser reads "&#58;" as ":"
                inner = seen_inside(seen, unescape(attributes.get((None, "style"), "")),
                                    hidden=(None, "hidden") in attributes)
                if inner is None or (kind == "EmptyTag" and token["name"] == "img"
                                     and not inner.visible):
                    skipping = 1 if kind == "StartTag" else 0
                    continue
                if kind == "StartTag":
                    outer.append(seen)
                    seen = inner
            elif kind == "EndTag" and outer:
                seen = outer.pop()
            elif kind == "Characters" and not seen.readable:
                continue
            yield token


class _CSS(CSSSanitizer):
    """bleach checks property names only; drop declarations whose value could fetch or run
    something (url(), image-set(), IE's expression(), behaviours, bindings)."""

    _HAZARDS = ("url(", "image-set(", "expression(", "behavior", "binding", "javascript:")
    #: what the hiding rule reads (seen_inside) must be what it can read: a computed
    #: size such as calc(0px) or var(--x, 0) would hide text in the frame and not in print
    _COMPUTED = re.compile(r"(display|font|font-size):.*\(")

    def sanitize_css(self, style: str) -> str:
        cleaned = super().sanitize_css(style)
        declarations = [d for d in cleaned.split(";") if d.strip()]
        safe = [d for d in declarations
                if not any(h in re.sub(r"/\*.*?\*/|\s", "", d.lower()) for h in self._HAZARDS)
                and not self._COMPUTED.match(re.sub(r"\s", "", d.lower()))]
        return "".join(f"{d.strip()};" for d in safe)


def clean_html(html: str, *, cid_url: Callable[[str], str | None] = lambda _: None,
               allow_remote: bool = False, tags: frozenset[str] = TAGS,
               attributes: dict[str, list[str]] = ATTRIBUTES,
               css_properties: frozenset[str] = CSS_PROPERTIES) -> tuple[str, bool]:
    """(safe HTML without what the sender hid, whether it referred to remote images). A
    narrower allowlist (``tags``, ``attributes``, ``css_properties``) serves text written
    in the portal."""
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
    # Hidden elements go before the allowlist: it drops the very properties (opacity,
    # visibility, overflow) that hid them, which would make them show in the frame.
    walk = cleaner.walker
    cleaner.walker = lambda tree: _Hidden(walk(tree))
    return cleaner.clean(_drop_invisible(html)), bool(found)


def visible_text(html: str, *, large: bool = False) -> str:
    """The text a reader sees of ``html``: the sanitized tree's, so what the sender hid
    is no more in it than on the screen. Routing reads every word instead
    (``mime.html_to_text``): hiding one must not slip a message past a policy.

    A body too ``large`` to sanitize (app/domain/reading.py, HTML_DISPLAY_LIMIT) is read
    in one linear pass instead, which leaves out each element the same rule hides with
    all it holds, but not text hidden by a font size or visibility it inherits."""
    if large:
        return mime.html_to_text(html, hidden=_hides)
    return mime.html_to_text(clean_html(html)[0])


_ATTRIBUTE = re.compile(r"""([^\s"'=<>/]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")


def _hides(attributes: str) -> bool:
    """Whether a tag's attributes (its text as written) hide it and all it holds."""
    style, hidden = "", False
    for name, value in _ATTRIBUTE.findall(attributes):
        name = name.lower()
        if name == "style" and not style:  # a browser takes the first of a name
            style = unescape(value[1:-1] if value[:1] in ("'", '"') else value)
        hidden = hidden or name == "hidden"
    return seen_inside(Seen(), style, hidden=hidden) is None


# --- text written in the portal's editor ------------------------------------------------
# Only what its toolbar makes: bold, italic, lists, links and quotes, in paragraphs. No
# style, class or image: whatever else a paste or a forged request carries is dropped.
COMPOSED_TAGS = frozenset({"a", "b", "bdi", "blockquote", "br", "div", "em", "i", "li", "ol",
                           "p", "strong", "ul"})
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
