"""What the mail client buttons need from the portal.

Two downloads, for an administrator or an internal user who may Send Secure: the Outlook
add-in's manifest and the Thunderbird extension, both built for this portal's address
(``CCM_BASE_URL``). And what Outlook loads itself, with no session: the add-in's
function file page, its script and the icons. These hold nothing but the buttons' code.

The function file page is the one page of the portal that runs a script from elsewhere:
Office.js, which Microsoft requires every add-in to load from its own address. It
carries its own Content-Security-Policy allowing that one origin for scripts, and being
framed by Outlook on the web (its ``frame-ancestors``; a browser ignores the portal's
``X-Frame-Options: DENY`` where a policy has ``frame-ancestors``). Every other page keeps
the portal's policy (app/web/security.py), with no outside origin at all.
"""

from __future__ import annotations

from flask import abort, current_app, make_response, request
from flask_login import current_user, login_required

from app import mail_clients
from app.web.mail_clients import bp

#: where Office.js comes from (Microsoft's CDN for add-ins)
OFFICE_JS_ORIGIN = "https://appsforoffice.microsoft.com"
#: the pages of Outlook on the web (and new Outlook, which is the same) that frame the
#: function file; classic Outlook runs it in a browser control of its own, unframed
OUTLOOK_ORIGINS = ("https://outlook.office.com", "https://outlook.office365.com",
                   "https://outlook.live.com", "https://outlook.cloud.microsoft",
                   "https://*.outlook.com", "https://*.office.com",
                   "https://*.office365.com", "https://*.cloud.microsoft")
FUNCTION_FILE_POLICY = "; ".join([
    "default-src 'none'",
    f"script-src 'self' {OFFICE_JS_ORIGIN}",
    "frame-ancestors " + " ".join(OUTLOOK_ORIGINS),
    "form-action 'none'",
    "base-uri 'none'",
])
#: what Outlook loads is public and changes only with a new version: cached, revalidated
REVALIDATE = "no-cache"


def _portal() -> str:
    return current_app.config["BASE_URL"]


def _may_download() -> None:
    if not (current_user.is_admin or current_user.may_send_secure):
        abort(403)


def _file(data: bytes, mimetype: str, *, download: str | None = None,
          cache: str | None = None):
    """``data`` as a response; without ``cache``, the portal's own Cache-Control
    (no-store, app/web/security.py)."""
    response = make_response(data)
    response.mimetype = mimetype
    if cache:
        response.headers["Cache-Control"] = cache
    if download:
        response.headers["Content-Disposition"] = f'attachment; filename="{download}"'
    return response


@bp.route("/mail-clients/outlook/manifest.xml")
@login_required
def outlook_manifest():
    """The Outlook add-in's manifest, with this portal's address in it."""
    _may_download()
    return _file(mail_clients.outlook_manifest(_portal()), "application/xml",
                 download="send-secure-outlook.xml")


@bp.route("/mail-clients/thunderbird/send-secure.xpi")
@login_required
def thunderbird_xpi():
    """The Thunderbird extension, packaged as an .xpi."""
    _may_download()
    return _file(mail_clients.thunderbird_xpi(_portal()), "application/x-xpinstall",
                 download="send-secure-thunderbird.xpi")


@bp.route(mail_clients.OUTLOOK_COMMANDS_PATH)
def outlook_commands():
    """The add-in's function file: Office.js and the menu's script, no content."""
    response = _file(mail_clients.source("outlook", "commands.html"), "text/html",
                     cache=REVALIDATE)
    response.headers["Content-Security-Policy"] = FUNCTION_FILE_POLICY
    return response


@bp.route(mail_clients.OUTLOOK_SCRIPT_PATH)
def outlook_script():
    """The menu's script, which the function file loads."""
    return _file(mail_clients.source("outlook", "send_secure.js"), "text/javascript",
                 cache=REVALIDATE)


#: each icon's fixed address, as the manifest names them: no path parameter to guess at
ICONS = {mail_clients.ICON_PATH.format(size=size): size for size in mail_clients.ICON_SIZES}


def icon():
    """The buttons' icon, which Outlook shows from another origin."""
    size = ICONS[request.path]
    response = _file(mail_clients.source("icons", f"icon-{size}.png"), "image/png",
                     cache=REVALIDATE)
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


for _path in ICONS:
    bp.add_url_rule(_path, "icon", icon)
