"""change counter: a number every change to what intake keeps between messages moves on

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 10:10:00

Intake keeps a sender's tenant, its policies and recipients' account ids from one
storing transaction to the next (app/database.py, ``kept_until_changed``), as long as
this number has not moved. Triggers move it in the same transaction as the change, so
every process sees it, and so does a change made by hand in SQL.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

#: what each trigger watches: a tenant, its domains and policies, and an account's
#: address (its id for an address changes only when it is removed or readdressed)
WATCHED = (
    ("tenant", "INSERT OR UPDATE OR DELETE", "INSERT", "UPDATE", "DELETE"),
    ("domain", "INSERT OR UPDATE OR DELETE", "INSERT", "UPDATE", "DELETE"),
    ("policy", "INSERT OR UPDATE OR DELETE", "INSERT", "UPDATE", "DELETE"),
    ("users", "UPDATE OF email, tenant_id OR DELETE", "UPDATE OF email, tenant_id", "DELETE"),
)
#: the counter's one row, created if missing (a test emptying every table removes it)
BUMP = ("INSERT INTO change_counter (id, generation) VALUES (1, 1) "
        "ON CONFLICT (id) DO UPDATE SET generation = change_counter.generation + 1")


def upgrade():
    op.create_table(
        'change_counter',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_change_counter')),
    )
    op.execute(sa.text("INSERT INTO change_counter (id, generation) VALUES (1, 1)"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(
            "CREATE FUNCTION change_counter_bump() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"))
        for table, events, *_ in WATCHED:
            op.execute(sa.text(
                f"CREATE TRIGGER {table}_changed AFTER {events} ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION change_counter_bump()"))
        return
    for table, _, *events in WATCHED:  # SQLite: one trigger an event, each for each row
        for event in events:
            name = f"{table}_{event.split()[0].lower()}_changed"
            op.execute(sa.text(f"CREATE TRIGGER {name} AFTER {event} ON {table} "
                               f"BEGIN {BUMP}; END"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table, *_ in WATCHED:
            op.execute(sa.text(f"DROP TRIGGER {table}_changed ON {table}"))
        op.execute(sa.text("DROP FUNCTION change_counter_bump()"))
    else:
        for table, _, *events in WATCHED:
            for event in events:
                op.execute(sa.text(f"DROP TRIGGER {table}_{event.split()[0].lower()}_changed"))
    op.drop_table('change_counter')
