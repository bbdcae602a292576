"""report_customer_facts and report_snapshot: what the reports.refresh job computes

Revision ID: d5f3b8e2a7c4
Revises: c4e8a1f2d6b3
Create Date: 2026-11-22 11:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = "d5f3b8e2a7c4"
down_revision = "c4e8a1f2d6b3"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "report_customer_facts",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("first_order_at", sa.DateTime(), nullable=False),
        sa.Column("cohort_month", sa.String(length=7), nullable=False),
        sa.Column("second_order_at", sa.DateTime(), nullable=True),
        sa.Column("second_gap_days", sa.Double(), nullable=True),
        sa.Column("net_90", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("net_180", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("first_touch_source", sa.String(length=120), nullable=True),
        sa.Column("last_touch_source", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_report_customer_facts_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_report_customer_facts")),
    )
    op.create_index(
        "ix_report_facts_first_order", "report_customer_facts", ["first_order_at"], unique=False
    )
    op.create_table(
        "report_snapshot",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_report_snapshot")),
    )
    op.create_table(
        "report_daily_count",
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "day", "key", name=op.f("pk_report_daily_count")),
    )


def downgrade():
    op.drop_table("report_daily_count")
    op.drop_table("report_snapshot")
    op.drop_index("ix_report_facts_first_order", table_name="report_customer_facts")
    op.drop_table("report_customer_facts")
