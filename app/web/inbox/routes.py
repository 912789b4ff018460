"""Views of the inbox blueprint: thin callers of domain.mailbox, .reading and .replies."""

from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.domain import access_log, composing, conversations, mailbox, replies
from app.extensions import db
from app.mail.sanitize import text_to_html
from app.models import Side
from app.web import message_body, uploads
from app.web.inbox import bp
from app.web.inbox.forms import ReplyForm, rich_editor, sent_again
from app.web.languages import say
from app.web.rendering import page, redirect_to


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
    fate = mailbox.fate_of(copy)
    if fate is None:
        return None
    name = "withdrawn" if fate.withdrawn else "expired"
    return page(f"inbox/{name}.html", f"inbox/_{name}.html", copy=copy, fate=fate), 410


@bp.route("/<public_id>")
@login_required
def message(public_id: str):
    """One message, its attachments, and the way to reply."""
    copy = _own_copy(public_id)
    if gone := _unavailable(copy):
        return gone
    earlier, later = conversations.around(current_user, copy.message)
    response = page("inbox/message.html", "inbox/_message.html", copy=copy,
                    **message_body.shown(copy.message), earlier=earlier,
                    later=[(turn, None if turn.fate else [text_to_html(t) for t in turn.said()])
                           for turn in later],
                    internal=current_user.kind == Side.INTERNAL)
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
    return message_body.framed(copy.message, lambda number: url_for(
        "inbox.inline", public_id=public_id, number=number))


@bp.route("/<public_id>/parts/<int:number>")
@login_required
def attachment(public_id: str, number: int):
    """Download one attachment: always as a file, never shown in the portal's origin."""
    copy = _own_copy(public_id)
    if _unavailable(copy):
        abort(410)
    found = message_body.attachment(copy.message, number)
    if found is None:
        abort(404)
    response, filename = found
    access_log.record("downloaded", tenant=copy.message.tenant, user=current_user,
                      message=copy.message, detail=filename)
    db.session.commit()
    return response


@bp.route("/<public_id>/inline/<int:number>")
@login_required
def inline(public_id: str, number: int):
    """An image the message itself carries, referred to by cid: in its HTML."""
    copy = _own_copy(public_id)
    if _unavailable(copy):
        abort(410)
    return message_body.inline_image(copy.message, number) or abort(404)


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
        form.body.data, starting_html = replies.drafts(
            copy, intro=_("On %(when)s, %(sender)s wrote:"),  # replies.QUOTE_INTRO
            language=str(get_locale()))
    elif form.validate_on_submit():
        try:
            replies.send(
                copy, current_user, to=form.recipients.data[:1], cc=form.recipients.data[1:],
                body=form.body.data, body_html=form.body_html.data,
                uploads=uploads.from_files(form.attachments.data),
                mode=form.mode.data if "mode" in form else None,
                client_address=request.remote_addr)
        except composing.ComposeRefused as refused:
            db.session.rollback()
            form.form_errors.append(say(refused.words))
        else:
            access_log.record("replied", tenant=copy.message.tenant, user=current_user,
                              message=copy.message)
            db.session.commit()
            flash(_("Your reply has been sent."), "success")
            return redirect_to(url_for("inbox.message", public_id=public_id))
    rich_editor(form.body, sent_again(form) if request.method == "POST" else starting_html)
    return page("inbox/reply.html", "inbox/_reply_form.html", copy=copy, form=form,
                reply_all=reply_all, internal=internal,
                max_bytes=composing.attachment_limit())
