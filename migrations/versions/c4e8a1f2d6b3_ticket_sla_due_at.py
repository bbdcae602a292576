"""ticket.sla_due_at: the queue's SLA sort key, computed by the database, and its index

Revision ID: c4e8a1f2d6b3
Revises: b7d2e41c9a10
Create Date: 2026-11-22 10:25:00

A generated column (STORED on PostgreSQL, VIRTUAL on SQLite, which cannot add a stored one to
an existing table): the earliest unmet deadline of a running SLA clock, else 9999-12-31. The
expression is `helpdesk.tickets.models.SLA_DUE_SQL`, copied here so that this migration
keeps building the same column if the model changes later.
"""

import sqlalchemy as sa
from alembic import op

revision = "c4e8a1f2d6b3"
down_revision = "b7d2e41c9a10"
branch_labels = None
depends_on = None

NEVER = "'9999-12-31 00:00:00.000000'"
FIRST = (
    f"CASE WHEN first_responded_at IS NULL THEN COALESCE(first_response_due_at, {NEVER})"
    f" ELSE {NEVER} END"
)
RESOLUTION = (
    f"CASE WHEN solved_at IS NULL THEN COALESCE(resolution_due_at, {NEVER}) ELSE {NEVER} END"
)
SLA_DUE_SQL = (
    f"CASE WHEN status NOT IN ('new', 'open', 'pending') OR sla_paused_at IS NOT NULL THEN {NEVER}"
    f" WHEN {FIRST} <= {RESOLUTION} THEN {FIRST} ELSE {RESOLUTION} END"
)


def upgrade():
    # STORED on PostgreSQL (its only kind before 18); SQLite cannot ADD a STORED column.
    persisted = True if op.get_bind().dialect.name == "postgresql" else None
    op.add_column(
        "ticket",
        sa.Column(
            "sla_due_at",
            sa.DateTime(),
            sa.Computed(SLA_DUE_SQL, persisted=persisted),
            nullable=True,
        ),
    )
    op.create_index("ix_ticket_sla_due", "ticket", ["sla_due_at", "id"], unique=False)


def downgrade():
    op.drop_index("ix_ticket_sla_due", table_name="ticket")
    op.drop_column("ticket", "sla_due_at")
