"""rfm_boundaries.site_aov: the site mean AOV stored with the RFM cut points

Revision ID: b7d2e41c9a10
Revises: 390dee7efcc3
Create Date: 2026-11-22 10:08:00

"""
from alembic import op
import sqlalchemy as sa


revision = "b7d2e41c9a10"
down_revision = "390dee7efcc3"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("rfm_boundaries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site_aov", sa.Numeric(precision=18, scale=6), nullable=True))


def downgrade():
    with op.batch_alter_table("rfm_boundaries", schema=None) as batch_op:
        batch_op.drop_column("site_aov")
