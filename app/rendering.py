"""One way to answer with a page or, for htmx, just the fragment that changes."""

from flask import make_response, redirect, render_template

from .extensions import htmx


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
    """``target`` when it is a path on this site, else None (no open redirects)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return None
