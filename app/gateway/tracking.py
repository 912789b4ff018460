"""Delivery events: one line of a recipient's history each, in words administrators search."""

from ..models import DeliveryEvent, Recipient

#: verbatim texts administrators look for (DESIGN.md section 2)
DELIVERED_TO_CCM = "Delivered to CCM isolation area"
DELIVERED_VIA_MX = "Email Delivered via MX resolution"


def record(recipient: Recipient, kind: str, text: str) -> None:
    recipient.events.append(DeliveryEvent(kind=kind, text=text[:2000]))
