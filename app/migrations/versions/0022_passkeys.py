"""passkeys: WebAuthn credentials, and each tenant's passkey policy per side

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'passkey',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('credential_id', sa.LargeBinary(length=1023), nullable=False),
        sa.Column('user_handle', sa.LargeBinary(length=64), nullable=False),
        sa.Column('public_key', sa.LargeBinary(), nullable=False),
        sa.Column('sign_count', sa.Integer(), nullable=False),
        sa.Column('transports', sa.String(length=200), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'],
                                name=op.f('fk_passkey_tenant_id_tenant'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_passkey_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_passkey')),
        sa.UniqueConstraint('credential_id', name=op.f('uq_passkey_credential_id')),
    )
    with op.batch_alter_table('passkey', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_passkey_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_passkey_user_id'), ['user_id'], unique=False)
    # Allowed everywhere: a person may add one, nobody must.
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('passkeys_external', sa.String(length=10), nullable=False,
                                      server_default='allowed'))
        batch_op.add_column(sa.Column('passkeys_internal', sa.String(length=10), nullable=False,
                                      server_default='allowed'))
        batch_op.add_column(sa.Column('passkey_first_contact', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade():
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.drop_column('passkey_first_contact')
        batch_op.drop_column('passkeys_internal')
        batch_op.drop_column('passkeys_external')
    with op.batch_alter_table('passkey', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_passkey_user_id'))
        batch_op.drop_index(batch_op.f('ix_passkey_tenant_id'))
    op.drop_table('passkey')
