"""A stored message's body as the portal shows it, to its recipient (inbox) and to its
sender (Sent): one reading (app/domain/reading.py), one sanitizer (app/mail/sanitize.py),
one framed page with a CSP of its own, one way to send a part's bytes."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Response, render_template, request

from app.domain import reading
from app.mail import filenames, mime
from app.mail.sanitize import clean_html, text_to_html
from app.models import Message

#: the framed message body may show inline styles, and nothing may run in it
_BODY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'{remote}; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")

#: inline images shown in the body; anything else (SVG included) is only downloadable
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}

#: a media type as RFC 2045 spells one; the sender's anything else is served as bytes
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


def shown(message: Message) -> dict:
    """What templates/_message_body.html needs: the readable message, its text (an HTML
    body's too) escaped, whether its HTML asks for remote images and whether they are shown."""
    readable = reading.read_message(message)
    has_remote, text = False, readable.text
    if readable.html is not None:
        # An HTML body also goes in as its text: what a browser without script (which
        # cannot size the body's frame) and a printer (which cuts a frame at the page's
        # end) show. It is the sanitized tree's text, as sanitize.visible_text gives it,
        # from the one cleaning that also tells of remote images: what the sender hid is
        # missing from paper as from the screen.
        cleaned, has_remote = clean_html(readable.html)
        text = mime.html_to_text(cleaned)
    return {"readable": readable, "has_remote": has_remote,
            "show_remote": request.args.get("remote") == "1", "text": text_to_html(text)}


def framed(message: Message, cid_url: Callable[[int], str]) -> Response:
    """The sanitized HTML body, for a sandboxed frame; ``cid_url`` gives the address of
    an inline image by its part's number."""
    readable = reading.read_message(message)
    allow_remote = request.args.get("remote") == "1"

    def url_of(content_id: str) -> str | None:
        # By the part's number, never by the Content-ID itself: the sender writes that,
        # and "../../<another id>/parts/0" would be a same-origin path of the mailbox.
        if (described := readable.inline.get(content_id)) is not None:
            return cid_url(described.number)
        return None

    html, _ = clean_html(readable.html or "", cid_url=url_of, allow_remote=allow_remote)
    response = Response(render_template("inbox/body.html", html=html))
    response.headers["Content-Security-Policy"] = _BODY_POLICY.format(
        remote=" https: http:" if allow_remote else "")
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def inline_image(message: Message, number: int) -> Response | None:
    """An image the message carries for its HTML (cid:); None for any other part."""
    described = next((part for part in reading.read_message(message).inline.values()
                      if part.number == number), None)
    if described is None or described.content_type not in INLINE_TYPES:
        return None
    data, size, content_type, _ = reading.download(message, described.number)
    return part_response(data, size, content_type)


def attachment(message: Message, number: int) -> tuple[Response, str] | None:
    """A part as a download, always a file, never shown in the portal's origin; with its
    safe file name. None when there is no such part."""
    part = reading.download(message, number)
    if part is None:
        return None
    data, size, content_type, filename = part
    response = part_response(data, size, content_type)
    response.headers["Content-Disposition"] = filenames.content_disposition(filename)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response, filename


def part_response(data, size: int, content_type: str) -> Response:
    """A part's content: whole, or streamed slice by slice as it is read and decoded
    (then Flask cannot know its length)."""
    if not _MEDIA_TYPE.fullmatch(content_type):
        content_type = "application/octet-stream"
    response = Response(data, mimetype=content_type)
    response.headers["Content-Length"] = str(size)
    return response
