"""Views of the compose blueprint: thin callers of domain.composing and queries.sent_items."""

from __future__ import annotations

from functools import wraps

from flask import abort, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.domain import access_log, composing, isolation
from app.extensions import db
from app.models import Side
from app.web import message_body, uploads
from app.web.compose import bp
from app.web.compose.forms import ComposeForm, RevokeForm
from app.web.inbox.forms import rich_editor, sent_again
from app.web.languages import say
from app.web.queries import sent_items
from app.web.rendering import page, redirect_to


def internal_only(view):
    """Composing and sent items are for the tenant's own people."""

    @wraps(view)
    @login_required
    def guarded(*args, **kwargs):
        if current_user.kind != Side.INTERNAL:
            abort(403)
        return view(*args, **kwargs)

    return guarded


@bp.route("/compose/", methods=["GET", "POST"])
@internal_only
def compose():
    """Write a new message, with a CCM mode for those allowed to choose one."""
    form = ComposeForm()
    may_choose = current_user.may_use_portal_ccm
    if not may_choose:
        del form.mode
    rich = ""
    if request.method == "GET" and (wanted := request.args.get("draft")):
        draft = composing.draft_for(current_user, wanted) or abort(404)
        form.draft.data, form.to.data, form.cc.data = draft.public_id, draft.to, draft.cc
        form.subject.data, form.body.data, rich = draft.subject, draft.body, draft.body_html
        if may_choose:
            form.mode.data = draft.mode
    rich_editor(form.body, rich or sent_again(form))
    if form.validate_on_submit():
        try:
            message = composing.send_new(
                current_user, to=form.to.data, cc=form.cc.data or "",
                subject=form.subject.data or "", body=form.body.data or "",
                body_html=form.body_html.data, uploads=uploads.from_files(form.attachments.data),
                mode=form.mode.data if may_choose else None,
                client_address=request.remote_addr)
        except composing.ComposeRefused as refused:
            db.session.rollback()
            _show(form, refused)
        else:
            composing.discard_draft(current_user, form.draft.data)
            db.session.commit()
            flash(_("Your message has been sent."), "success")
            return redirect_to(url_for("compose.sent_message", public_id=message.public_id))
    return page("compose/compose.html", "compose/_compose_form.html", form=form,
                may_choose=may_choose, max_bytes=composing.attachment_limit())


def _show(form: ComposeForm, refused: composing.ComposeRefused) -> None:
    """Put the refusal beside the field at fault, or above the form."""
    if refused.field:
        form[refused.field].errors = [*form[refused.field].errors, say(refused.words)]
    else:
        form.form_errors.append(say(refused.words))


@bp.route("/compose/draft", methods=["POST"])
@internal_only
def save_draft():
    """Autosave while typing (htmx): answers with the draft's state, to swap in.

    The first save's answer carries the new draft's id, which later saves send back to
    update that draft. What cannot be saved is said in the state, the saved draft kept.
    """
    form, public_id = request.form, request.form.get("draft")
    try:
        draft = composing.save_draft(
            current_user, public_id, to=form.get("to", ""), cc=form.get("cc", ""),
            subject=form.get("subject", ""), body=form.get("body", ""), mode=form.get("mode"),
            body_html=form.get("body_html"))
    except composing.DraftNotFound:
        abort(404)
    except composing.ComposeRefused as refused:
        return page("compose/_draft_state.html", "compose/_draft_state.html",
                    draft=composing.draft_for(current_user, public_id), refused=say(refused.words))
    db.session.commit()
    return page("compose/_draft_state.html", "compose/_draft_state.html", draft=draft)


@bp.route("/compose/drafts")
@internal_only
def drafts():
    """Drafts to pick up where they were left."""
    return page("compose/drafts.html", "compose/_drafts.html",
                drafts=composing.drafts(current_user), most=composing.MAX_DRAFTS)


@bp.route("/compose/drafts/<public_id>/delete", methods=["POST"])
@internal_only
def delete_draft(public_id: str):
    if not composing.discard_draft(current_user, public_id):
        abort(404)
    db.session.commit()
    return redirect_to(url_for("compose.drafts"))


@bp.route("/sent/")
@internal_only
def sent():
    """What this user sent, with where each recipient's copy stands."""
    try:
        number = int(request.args.get("page", 1))
    except ValueError:
        number = 1
    return page("compose/sent.html", {"sent": "compose/_sent.html", None: "compose/_sent.html"},
                listing=sent_items.sent(current_user, number=number),
                status=sent_items.status, by_ccm=sent_items.by_ccm,
                outcomes=sent_items.outcomes)


def _own_sent(public_id: str):
    """A message this user sent; 404 for anyone else's."""
    message = sent_items.sent_message(current_user, public_id)
    if message is None:
        abort(404)
    return message


def _own_content(public_id: str):
    """A message this user sent whose content is still kept; 410 once it is purged."""
    message = _own_sent(public_id)
    if message.purged_at:
        abort(410)
    return message


@bp.route("/sent/<public_id>")
@internal_only
def sent_message(public_id: str):
    """One sent message: its body, and per recipient route, state and every delivery event."""
    message = _own_sent(public_id)
    body = {} if message.purged_at else message_body.shown(message)
    return page("compose/sent_message.html", "compose/_sent_message.html", message=message,
                status=sent_items.status, blind=sent_items.blind_copies(message),
                by_ccm=sent_items.by_ccm(message), form=RevokeForm(),
                accesses=access_log.of_message(message), **body)


@bp.route("/sent/<public_id>/body")
@internal_only
def sent_body(public_id: str):
    """The sent message's HTML body, sanitized and framed as its recipients see it."""
    message = _own_content(public_id)
    return message_body.framed(message, lambda number: url_for(
        "compose.sent_inline", public_id=public_id, number=number))


@bp.route("/sent/<public_id>/inline/<int:number>")
@internal_only
def sent_inline(public_id: str, number: int):
    """An image the sent message carries for its HTML."""
    message = _own_content(public_id)
    return message_body.inline_image(message, number) or abort(404)


@bp.route("/sent/<public_id>/parts/<int:number>")
@internal_only
def sent_attachment(public_id: str, number: int):
    """Download an attachment of the sent message (not recorded as a recipient's access)."""
    message = _own_content(public_id)
    found = message_body.attachment(message, number)
    if found is None:
        abort(404)
    return found[0]


@bp.route("/sent/<public_id>/revoke", methods=["POST"])
@internal_only
def revoke(public_id: str):
    """Withdraw the message from one recipient, or from all, before its window ends."""
    message = sent_items.sent_message(current_user, public_id)
    form = RevokeForm()
    if message is None:
        abort(404)
    if form.validate_on_submit():
        chosen = [r for r in message.recipients
                  if form.recipient.data == "all" or str(r.id) == form.recipient.data]
        withdrawn = [r.address for r in chosen
                     if isolation.revoke(r, by=f"the sender, {current_user.email}")]
        db.session.commit()
        if withdrawn:
            flash(_("Withdrawn from %(addresses)s.", addresses=", ".join(withdrawn)), "success")
        else:
            flash(_("There was nothing left to withdraw."), "info")
    return redirect_to(url_for("compose.sent_message", public_id=public_id))
