"""comment import ref

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 09:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("import_ref", sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_comments_post_id"), ["post_id", "import_ref"]
        )


def downgrade() -> None:
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_comments_post_id"), type_="unique")
        batch_op.drop_column("import_ref")
