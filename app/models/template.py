"""A tenant's own version of a notification template, per language."""

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db


class NotificationTemplate(db.Model):
    """Overrides the built-in subject, text and HTML of one kind of notification in one
    language, or (``language`` None) in every language that has no version of its own."""

    __tablename__ = "notification_template"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    #: a code of app/web/languages.py; None: every language (a version saved before there
    #: were languages, or imported by ``ccm config import``)
    language: Mapped[str | None] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)

    tenant = relationship("Tenant")
