"""delivery events for people: a maildir delivery no longer names the server's path

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 06:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    # Senders and tenant administrators read these lines; the path was the server's own.
    op.execute("UPDATE delivery_event SET text = 'Written to the outbox (maildir)' "
               "WHERE text LIKE 'Delivered to the maildir %'")


def downgrade():
    pass  # the paths are gone; the new wording reads as well under the old code
