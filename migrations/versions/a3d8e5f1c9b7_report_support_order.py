"""report_support_order: the revenue after support of settled tickets

Revision ID: a3d8e5f1c9b7
Revises: e6a9c3d1f4b2
Create Date: 2026-11-22 13:00:00

One row per (ticket, order) placed within the window after the ticket was solved, for tickets
whose window had closed at the last `reports.refresh`; the support page probes the orders live
only for the tickets solved or changed since, found by two new ticket indexes:
- ticket (solved_at): tickets solved since the refresh's settled cut-off;
- ticket (updated_at): tickets changed since the refresh.

And outbound_message (status, sent_at, kind, customer_id): the marketing report's recipients of
a period as an index-only range (the message rows are wide); checkout (abandoned_at,
recovered_order_id, total): its cart recovery, the same way; outbound_message (created_at,
kind, status): the messages created since the last refresh.
"""

import sqlalchemy as sa
from alembic import op

revision = "a3d8e5f1c9b7"
down_revision = "e6a9c3d1f4b2"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "report_support_order",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=False),
        sa.Column("solved_at", sa.DateTime(), nullable=False),
        sa.Column("total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name=op.f("fk_report_support_order_ticket_id_ticket"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["order.id"],
            name=op.f("fk_report_support_order_order_id_order"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["agent.id"],
            name=op.f("fk_report_support_order_assignee_id_agent"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "order_id", name=op.f("pk_report_support_order")),
    )
    op.create_index(
        "ix_report_support_order_solved", "report_support_order", ["solved_at"], unique=False
    )

    op.create_index("ix_ticket_solved", "ticket", ["solved_at"], unique=False)
    op.create_index("ix_ticket_updated", "ticket", ["updated_at"], unique=False)
    op.create_index(
        "ix_outbound_sent",
        "outbound_message",
        ["status", "sent_at", "kind", "customer_id"],
        unique=False,
    )
    op.create_index(
        "ix_outbound_created",
        "outbound_message",
        ["created_at", "kind", "status"],
        unique=False,
    )
    op.create_index(
        "ix_checkout_abandoned",
        "checkout",
        ["abandoned_at", "recovered_order_id", "total"],
        unique=False,
    )


def downgrade():
    op.drop_index("ix_checkout_abandoned", table_name="checkout")
    op.drop_index("ix_outbound_created", table_name="outbound_message")
    op.drop_index("ix_outbound_sent", table_name="outbound_message")
    op.drop_index("ix_ticket_updated", table_name="ticket")
    op.drop_index("ix_ticket_solved", table_name="ticket")
    op.drop_index("ix_report_support_order_solved", table_name="report_support_order")
    op.drop_table("report_support_order")
