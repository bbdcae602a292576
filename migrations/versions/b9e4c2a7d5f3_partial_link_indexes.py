"""ticket link and outbound enrolment indexes: partial, non-NULL rows only

Revision ID: b9e4c2a7d5f3
Revises: f2c7a9d4b8e1
Create Date: 2026-11-22 16:40:00

`ticket.merged_into_id`, `ticket.follow_up_of_id` and `outbound_message.flow_enrollment_id`
are NULL on almost every row. SQLite's ANALYZE counts the NULLs as one value, so after the
statistics job ran, its planner judged these indexes useless and scanned the table for an
equality look-up (the ticket page's "does anything link here?": ~19 ms at 50k tickets).
Indexing the non-NULL rows only fixes the statistics and shrinks the indexes on both
databases; every query on these columns is an equality or IN, which implies IS NOT NULL.
"""

import sqlalchemy as sa
from alembic import op

revision = "b9e4c2a7d5f3"
down_revision = "f2c7a9d4b8e1"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_ticket_merged_into", "ticket", "merged_into_id"),
    ("ix_ticket_follow_up_of", "ticket", "follow_up_of_id"),
    ("ix_outbound_enrollment", "outbound_message", "flow_enrollment_id"),
)


def upgrade():
    for name, table, column in INDEXES:
        op.drop_index(name, table_name=table)
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, table, [column], sqlite_where=where, postgresql_where=where)


def downgrade():
    for name, table, column in INDEXES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, [column])
