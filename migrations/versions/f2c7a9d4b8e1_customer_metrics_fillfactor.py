"""customer_metrics: fillfactor 50, so the nightly recompute's updates can be HOT

Revision ID: f2c7a9d4b8e1
Revises: a3d8e5f1c9b7
Create Date: 2026-11-22 13:15:00

The recompute writes only rows whose values change; a day later about half of those change
only their CLV percentile (not indexed), which PostgreSQL can update in place on the page
(HOT, no index entries) when the page has room. Existing pages fill up to the new factor as
rows are rewritten (or at once with VACUUM FULL / pg_repack, which this migration does not run:
it would lock the table). PostgreSQL only: SQLite has no fillfactor.
"""

from alembic import op

revision = "f2c7a9d4b8e1"
down_revision = "a3d8e5f1c9b7"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE customer_metrics SET (fillfactor = 50)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE customer_metrics RESET (fillfactor)")
