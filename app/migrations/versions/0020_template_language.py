"""template language: notification templates per language, a tenant's default language

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 09:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    # Every tenant so far wrote in English.
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('default_language', sa.String(length=16),
                                      nullable=False, server_default='en'))
    # A version saved so far has no language: it stays in force for every language
    # (what its tenant's recipients got until now) until one of their own is saved.
    with op.batch_alter_table('notification_template', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=16), nullable=True))
        batch_op.drop_constraint('uq_notification_template_tenant_id', type_='unique')
        batch_op.create_unique_constraint('uq_notification_template_tenant_id',
                                          ['tenant_id', 'kind', 'language'])


def downgrade():
    # Only the versions for every language were there before.
    op.execute("DELETE FROM notification_template WHERE language IS NOT NULL")
    with op.batch_alter_table('notification_template', schema=None) as batch_op:
        batch_op.drop_constraint('uq_notification_template_tenant_id', type_='unique')
        batch_op.create_unique_constraint('uq_notification_template_tenant_id',
                                          ['tenant_id', 'kind'])
        batch_op.drop_column('language')
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.drop_column('default_language')
