"""indexes for the support and marketing report pages

Revision ID: e6a9c3d1f4b2
Revises: d5f3b8e2a7c4
Create Date: 2026-11-22 11:00:00

- suppression (reason, started_at): suppressions_over_time counts each (reason, week) as one
  index-only range instead of computing the week of every row;
- ticket (assignee_id, solved_at) and ticket_message (author_agent_id, author_type, internal,
  created_at): agent_workload's per-agent counts;
- "order" (id) INCLUDE (total), PostgreSQL only: cart_recovery reads the recovered orders'
  totals without visiting the order heap.
"""

from alembic import op


revision = "e6a9c3d1f4b2"
down_revision = "d5f3b8e2a7c4"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_suppression_reason_started", "suppression", ["reason", "started_at"])
    op.create_index("ix_ticket_assignee_solved", "ticket", ["assignee_id", "solved_at"])
    op.create_index(
        "ix_ticket_message_author_created",
        "ticket_message",
        ["author_agent_id", "author_type", "internal", "created_at"],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_order_id_total", "order", ["id"], postgresql_include=["total"])


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_order_id_total", table_name="order")
    op.drop_index("ix_ticket_message_author_created", table_name="ticket_message")
    op.drop_index("ix_ticket_assignee_solved", table_name="ticket")
    op.drop_index("ix_suppression_reason_started", table_name="suppression")
