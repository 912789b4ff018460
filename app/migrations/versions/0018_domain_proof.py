"""domain proof: a domain a tenant administrator adds waits for a DNS TXT record

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 08:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    # Every domain so far was accepted as it stood: it stays verified. Only a verified
    # domain is unique, so tenants may wait on the same name until one proves it.
    with op.batch_alter_table('domain', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.add_column(sa.Column('proof_token', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('verified_at', sa.DateTime(), nullable=True))
        batch_op.drop_constraint('uq_domain_name', type_='unique')
        batch_op.create_index('ix_domain_name', ['name'], unique=False)
    op.create_index('uq_domain_verified_name', 'domain', ['name'], unique=True,
                    sqlite_where=sa.text('verified'), postgresql_where=sa.text('verified'))


def downgrade():
    op.execute("DELETE FROM domain WHERE NOT verified")
    op.drop_index('uq_domain_verified_name', table_name='domain')
    with op.batch_alter_table('domain', schema=None) as batch_op:
        batch_op.drop_index('ix_domain_name')
        batch_op.create_unique_constraint('uq_domain_name', ['name'])
        batch_op.drop_column('verified_at')
        batch_op.drop_column('proof_token')
        batch_op.drop_column('verified')
