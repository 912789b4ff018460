"""Message tracking: search the archive, see every delivery event, revoke."""

from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.domain import audit, isolation, reading
from app.extensions import db
from app.web.admin import bp
from app.web.admin.forms import RevokeForm, TrackingForm
from app.web.queries import sent_items, tracking_search
from app.web.rendering import page, redirect_to


@bp.route("/tracking")
def tracking():
    """Search by sender, recipient, subject, dates and route."""
    form = TrackingForm(request.args)
    messages = []
    everywhere = current_user.is_platform_admin and form.every_tenant.data
    if form.validate():
        messages = tracking_search.search(
            None if everywhere else current_user.tenant, tracking_search.Criteria(
                sender=form.sender.data or "", recipient=form.recipient.data or "",
                subject=form.subject.data or "", since=form.since.data, until=form.until.data,
                route=form.route.data or "", state=form.state.data or "",
                message_id=form.message_id.data or ""))
    return page("admin/tracking.html", {"results": "admin/_tracking_results.html",
                                        None: "admin/_tracking.html"},
                form=form, messages=messages, everywhere=everywhere)


def _message(public_id: str):
    """The message, if it is the administrator's tenant's (any, for the platform
    administrator)."""
    scope = None if current_user.is_platform_admin else current_user.tenant
    message = tracking_search.message_of(scope, public_id)
    if message is None:
        abort(404)
    return message


@bp.route("/tracking/<public_id>")
def tracked(public_id: str):
    """A message's headers, each recipient's route, and its whole delivery history."""
    message = _message(public_id)
    headers = []
    parsed = reading.headers(message)  # the headers only, not a large message's parts
    if parsed is not None:
        headers = [(name, reading.mime.header(parsed, name)) for name in
                   ("From", "To", "Cc", "Subject", "Date", "Message-ID")
                   if reading.mime.header(parsed, name)]
    return page("admin/tracked.html", "admin/_tracked.html", message=message, headers=headers,
                status=sent_items.status, blind=sent_items.blind_copies(message),
                form=RevokeForm())


@bp.route("/tracking/<public_id>/revoke", methods=["POST"])
def revoke(public_id: str):
    message = _message(public_id)
    form = RevokeForm()
    if form.validate_on_submit():
        chosen = [r for r in message.recipients
                  if form.recipient.data == "all" or str(r.id) == form.recipient.data]
        withdrawn = [r.address for r in chosen
                     if isolation.revoke(r, by=f"the administrator {current_user.email}")]
        if withdrawn:
            audit.record("message revoked", f"{message.subject!r} from {', '.join(withdrawn)}",
                         tenant=message.tenant)
        db.session.commit()
        flash(_("Withdrawn from %(addresses)s.", addresses=", ".join(withdrawn)) if withdrawn
              else _("There was nothing left to withdraw."), "success" if withdrawn else "info")
    return redirect_to(url_for("admin.tracked", public_id=public_id))
