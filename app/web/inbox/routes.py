"""Views of the inbox blueprint: thin callers of domain.mailbox, .reading and .replies."""

from __future__ import annotations

import re

from flask import Response, abort, flash, render_template, request, url_for
from flask_login import current_user, login_required

from app.domain import access_log, composing, mailbox, reading, replies
from app.extensions import db
from app.mail import filenames
from app.mail.sanitize import clean_html, text_to_html
from app.models import RecipientState, Side
from app.web import uploads
from app.web.inbox import bp
from app.web.inbox.forms import ReplyForm
from app.web.rendering import page, redirect_to

#: the framed message body may show inline styles, and nothing may run in it
_BODY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'{remote}; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


@bp.route("/")
@login_required
def index():
    """The signed-in user's secure messages, newest first."""
    try:
        number = int(request.args.get("page", 1))
    except ValueError:
        number = 1
    listing = mailbox.inbox(current_user, query=request.args.get("q", ""), number=number)
    return page("inbox/index.html",
                {"messages": "inbox/_messages.html", None: "inbox/_inbox.html"},
                listing=listing)


def _own_copy(public_id: str):
    copy = mailbox.copy_for(current_user, public_id)
    if copy is None:
        abort(404)
    return copy


def _unavailable(copy):
    """The page for a copy that can no longer be read, or None while it can."""
    if copy.state == RecipientState.REVOKED:
        return page("inbox/withdrawn.html", "inbox/_withdrawn.html"), 410
    if mailbox.is_expired(copy):
        return page("inbox/expired.html", "inbox/_expired.html", copy=copy), 410
    return None


@bp.route("/<public_id>")
@login_required
def message(public_id: str):
    """One message, its attachments, and the way to reply."""
    copy = _own_copy(public_id)
    if gone := _unavailable(copy):
        return gone
    readable = reading.read_message(copy.message)
    has_remote = False
    if readable.html is not None:
        _, has_remote = clean_html(readable.html)
    show_remote = request.args.get("remote") == "1"
    text = text_to_html(readable.text) if readable.html is None else None
    response = page("inbox/message.html", "inbox/_message.html", copy=copy,
                    readable=readable, text=text, has_remote=has_remote,
                    show_remote=show_remote)
    # Written once the page is ready, so a write holds the database only for itself;
    # a view that changes nothing (a reload) writes nothing.
    access_log.record_opened(tenant=copy.message.tenant, user=current_user,
                             message=copy.message)
    mailbox.opened(copy, request.remote_addr)
    if db.session.new or db.session.dirty:
        db.session.commit()
    return response


@bp.route("/<public_id>/body")
@login_required
def body(public_id: str):
    """The sanitized HTML body, shown in a sandboxed frame with a CSP of its own."""
    copy = _own_copy(public_id)
    if _unavailable(copy):
        abort(410)
    readable = reading.read_message(copy.message)
    allow_remote = request.args.get("remote") == "1"

    def cid_url(content_id: str) -> str | None:
        # By the part's number, never by the Content-ID itself: the sender writes that,
        # and "../../<another id>/parts/0" would be a same-origin path of the mailbox.
        if (described := readable.inline.get(content_id)) is not None:
            return url_for("inbox.inline", public_id=public_id, number=described.number)
        return None

    html, _ = clean_html(readable.html or "", cid_url=cid_url, allow_remote=allow_remote)
    response = Response(render_template("inbox/body.html", html=html))
    response.headers["Content-Security-Policy"] = _BODY_POLICY.format(
        remote=" https: http:" if allow_remote else "")
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.route("/<public_id>/parts/<int:number>")
@login_required
def attachment(public_id: str, number: int):
    """Download one attachment: always as a file, never shown in the portal's origin."""
    copy = _own_copy(public_id)
    if _unavailable(copy):
        abort(410)
    part = reading.download(copy.message, number)
    if part is None:
        abort(404)
    data, size, content_type, filename = part
    access_log.record("downloaded", tenant=copy.message.tenant, user=current_user,
                      message=copy.message, detail=filename)
    db.session.commit()
    response = _sent(data, size, content_type)
    response.headers["Content-Disposition"] = filenames.content_disposition(filename)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


#: inline images shown in the body; anything else (SVG included) is only downloadable
_INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


@bp.route("/<public_id>/inline/<int:number>")
@login_required
def inline(public_id: str, number: int):
    """An image the message itself carries, referred to by cid: in its HTML."""
    copy = _own_copy(public_id)
    if _unavailable(copy):
        abort(410)
    described = next((part for part in reading.read_message(copy.message).inline.values()
                      if part.number == number), None)
    if described is None or described.content_type not in _INLINE_TYPES:
        abort(404)
    data, size, content_type, _ = reading.download(copy.message, described.number)
    return _sent(data, size, content_type)


#: a media type as RFC 2045 spells one; the sender's anything else is served as bytes
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


def _sent(data, size: int, content_type: str) -> Response:
    """A part's content: whole, or streamed slice by slice as it is read and decoded
    (then Flask cannot know its length)."""
    if not _MEDIA_TYPE.fullmatch(content_type):
        content_type = "application/octet-stream"
    response = Response(data, mimetype=content_type)
    response.headers["Content-Length"] = str(size)
    return response


@bp.route("/<public_id>/reply", methods=["GET", "POST"])
@login_required
def reply(public_id: str):
    """Reply, or reply to all, to the people on the message and no one else."""
    copy = _own_copy(public_id)
    if gone := _unavailable(copy):
        return gone
    reply_all = request.values.get("all") == "1"
    form = ReplyForm()
    parties = replies.parties(copy)
    form.recipients.choices = parties
    internal = current_user.kind == Side.INTERNAL
    if not (internal and current_user.may_use_portal_ccm):
        del form.mode
    if request.method == "GET":
        to, cc = replies.defaults(copy, reply_all=reply_all)
        form.recipients.data = [*to, *cc]
    elif form.validate_on_submit():
        try:
            replies.send(
                copy, current_user, to=form.recipients.data[:1], cc=form.recipients.data[1:],
                body=form.body.data, uploads=uploads.from_files(form.attachments.data),
                mode=form.mode.data if "mode" in form else None,
                client_address=request.remote_addr)
        except composing.ComposeRefused as refused:
            db.session.rollback()
            form.form_errors.append(str(refused))
        else:
            access_log.record("replied", tenant=copy.message.tenant, user=current_user,
                              message=copy.message)
            db.session.commit()
            flash("Your reply has been sent.", "success")
            return redirect_to(url_for("inbox.message", public_id=public_id))
    return page("inbox/reply.html", "inbox/_reply_form.html", copy=copy, form=form,
                reply_all=reply_all, internal=internal,
                max_bytes=composing.attachment_limit())
