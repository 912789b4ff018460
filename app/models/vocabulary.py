"""The product's closed sets of words, one enumeration each (docs/architecture.md, Words).

Each member is the very string stored in the database and shown in exports, so the
columns stay plain strings and a member compares equal to its text: ``Route.CCM ==
"ccm"``. A new state or route is added here, and only here; tests/test_vocabulary.py
fails on a bare string naming one that is not.
"""

from __future__ import annotations

from enum import StrEnum


class Route(StrEnum):
    """How one recipient gets a message; an outbound item is internal or external."""

    CCM = "ccm"  # kept in the isolation area, the recipient notified
    INTERNAL = "internal"  # the tenant's internal relay
    EXTERNAL = "external"  # out by MX (or CCM_OUTBOUND)


class Side(StrEnum):
    """Which side of its tenant's boundary an address (a user, a recipient) is on."""

    INTERNAL = "internal"
    EXTERNAL = "external"


class Role(StrEnum):
    """What a portal account may do."""

    ADMIN = "admin"
    INTERNAL = "internal"
    EXTERNAL = "external"


class Mode(StrEnum):
    """The sender's CCM mode: from the portal composer, or X-CCM-Mode from a mail client."""

    OFF = "off"
    EXTERNAL = "external"  # external recipients only
    ALL = "all"


class RecipientState(StrEnum):
    """Where one recipient of a message stands."""

    QUEUED = "queued"
    HELD = "held"  # in the isolation area
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    REVOKED = "revoked"
    EXPIRED = "expired"


class QueueState(StrEnum):
    """Where one outbound item stands."""

    PENDING = "pending"
    SENDING = "sending"  # leased by a worker
    DONE = "done"
    FAILED = "failed"  # bounced: the sender was told
    SHUNTED = "shunted"  # set aside after an unexpected error, until an operator retries it
    ON_HOLD = "on_hold"  # kept from sending by an operator until released (ccm queue hold)


class PolicyKind(StrEnum):
    ROUTE = "route"
    CONTENT = "content"
    SECURE_DELIVERY = "secure_delivery"


class TlsLevel(StrEnum):
    """The TLS a secure delivery policy requires."""

    ENCRYPT = "encrypt"  # any certificate
    VERIFY = "verify"  # a certificate valid for the MX host


class Fallback(StrEnum):
    """What a secure delivery policy does when its TLS cannot be had."""

    CCM = "ccm"
    BOUNCE = "bounce"
