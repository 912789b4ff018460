"""The text/plain twin of HTML written in the portal's editor, and of received HTML
when a reply quotes it.

It reads HTML that ``sanitize`` has already cleaned (the editor's paragraphs, line
breaks, bold, italic, lists, links and quotes; and for received mail headings, tables
and preformatted text too) and writes it as mail programs write plain text: list items
as "- " or "1. ", links as "text <address>", quotes as "> ". Bold and italic keep their
words and lose their weight, as in any text part.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from app.mail.sanitize import clean_html

_BLANKS = re.compile(r"[ \t\r\n\f]+")
_VOID = {"br", "hr", "img", "input", "meta", "link", "col", "wbr"}
_BLOCKS = {"p", "div", "ul", "ol", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5",
           "h6", "table", "thead", "tbody", "tfoot", "tr", "caption", "dl", "dt", "dd",
           "address", "center", "hr"}
#: blocks followed by an empty line, as paragraphs are
_SPACED = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre"}
#: table cells: side by side on their row's line
_CELLS = {"td", "th"}


class _Node:
    def __init__(self, name: str, attributes: dict[str, str]) -> None:
        self.name, self.attributes = name, attributes
        self.children: list[_Node | str] = []


class _Tree(HTMLParser):
    """The elements as a tree; an end tag closes up to its own element, a stray one is
    ignored (the cleaner's output is well formed, so this is only for safety)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("", {})
        self.open = [self.root]

    def handle_starttag(self, tag, attrs):
        node = _Node(tag, {k: v or "" for k, v in attrs})
        self.open[-1].children.append(node)
        if tag not in _VOID:
            self.open.append(node)

    def handle_endtag(self, tag):
        for depth in range(len(self.open) - 1, 0, -1):
            if self.open[depth].name == tag:
                del self.open[depth:]
                return

    def handle_data(self, data):
        self.open[-1].children.append(data)


def html_as_text(html: str) -> str:
    """Any HTML (received mail's too) as its text part would say it: sanitized first,
    then written by ``to_text``, so lists, links and quotes stay readable as text."""
    return to_text(clean_html(html)[0])


def to_text(html: str) -> str:
    """The plain text of cleaned editor HTML (the MIME part adds its last line break)."""
    parser = _Tree()
    parser.feed(html)
    parser.close()
    text = "\n".join(_lines(parser.root.children))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def _lines(children: list[_Node | str]) -> list[str]:
    """The lines a run of block and inline content makes."""
    lines: list[str] = []
    inline: list[str] = []

    def flush() -> None:
        if inline:
            text = "".join(inline)
            inline.clear()
            text = text.removesuffix("\n")  # a last <br> ends the line, it adds none
            lines.extend(line.strip(" ") for line in text.split("\n"))

    for child in children:
        if isinstance(child, str) or child.name not in _BLOCKS:
            inline.append(_inline(child))
            continue
        flush()
        lines.extend(_block(child))
    flush()
    return lines


def _block(node: _Node) -> list[str]:
    if node.name in ("ul", "ol"):
        found, number = [], int(node.attributes.get("start") or 1) if \
            node.attributes.get("start", "").isdigit() else 1
        for child in node.children:
            if isinstance(child, _Node) and child.name == "li":
                marker = "- " if node.name == "ul" else f"{number}. "
                number += 1
                inner = _lines(child.children) or [""]
                found.append(marker + inner[0])
                found.extend(" " * len(marker) + line if line else "" for line in inner[1:])
            elif isinstance(child, str) and not child.strip():
                continue
            else:
                found.extend(_lines([child]))
        return found
    if node.name == "li":
        inner = _lines(node.children) or [""]
        return ["- " + inner[0], *("  " + line if line else "" for line in inner[1:])]
    if node.name == "pre":
        return [*_raw(node).strip("\n").split("\n"), ""]
    if node.name == "hr":
        return ["", "-" * 20, ""]
    if node.name == "blockquote":
        inner = _trim(_lines(node.children))
        return [f"> {line}" if line and not line.startswith(">") else f">{line}"
                for line in inner]
    inner = _lines(node.children)
    return [*inner, ""] if node.name in _SPACED else inner


def _raw(node: _Node | str) -> str:
    """Preformatted text as it was written, its spaces and lines kept."""
    if isinstance(node, str):
        return node
    return "\n" if node.name == "br" else "".join(_raw(child) for child in node.children)


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[0]:
        lines = lines[1:]
    while lines and not lines[-1]:
        lines = lines[:-1]
    return lines


def _inline(node: _Node | str) -> str:
    if isinstance(node, str):
        return _BLANKS.sub(" ", node).replace("\xa0", " ")
    if node.name == "br":
        return "\n"
    text = "".join(_inline(child) for child in node.children)
    if node.name in _CELLS:
        return f" {text.strip()} "
    if node.name == "a" and (href := node.attributes.get("href", "").strip()):
        words = " ".join(text.split())
        if not words:
            return href
        if href in (words, f"mailto:{words}"):
            return words
        return f"{words} <{href}>"
    return text
