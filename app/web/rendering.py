"""One way to answer with a page or, for htmx, just the fragment that changes."""

from urllib.parse import quote, urlsplit

from flask import make_response, redirect, render_template

from app.extensions import htmx


def page(template: str, fragment: str | dict[str | None, str], **context):
    """Render the fragment for htmx swaps and the full ``template`` otherwise.

    ``fragment`` may map htmx targets (element ids) to fragments, with ``None`` for any
    other target. A history restore asks for the whole page, so it gets it. ``Vary``
    tells caches that the answer depends on the headers.
    """
    chosen = template
    if htmx and not htmx.history_restore_request:
        if isinstance(fragment, dict):
            chosen = fragment.get(htmx.target, fragment[None])
        else:
            chosen = fragment
    response = make_response(render_template(chosen, **context))
    response.vary.add("HX-Request")
    response.vary.add("HX-Target")
    return response


def redirect_to(location: str):
    """Send the browser to ``location``: a whole-page visit even from an htmx request."""
    if htmx:
        response = make_response("", 200)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location)


def safe_next(target: str | None) -> str | None:
    """A path on this portal to send the browser to after ``target``, or None.

    Decided on the URL as a browser reads it (WHATWG URL parsing), not on the raw text:
    the browser strips C0 controls and spaces at both ends, drops every tab, CR and LF,
    and reads a backslash as a slash, so ``/%09/evil.example`` is ``//evil.example``,
    another site. Only a path without a scheme or host is accepted, and the answer is
    rebuilt from the parsed path and query, percent-encoded, never the text given. One
    function for every caller, so every way back after sign-in is checked alike.
    """
    if not target:
        return None
    url = target.strip("".join(map(chr, range(0x21))))
    url = url.translate(_DROPPED).replace("\\", "/")
    if not url.startswith("/") or url.startswith("//"):
        return None
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    try:
        path = quote(parts.path, safe=_PATH_SAFE)
        query = quote(parts.query, safe=_PATH_SAFE + "?")
    except UnicodeEncodeError:  # a lone surrogate: no browser sends one
        return None
    return path + (f"?{query}" if query else "")


#: What a browser removes from anywhere in a URL before parsing it.
_DROPPED = dict.fromkeys(map(ord, "\t\n\r"))
#: Characters a path may keep as they are: RFC 3986's unreserved and sub-delims, ``%``.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
