"""pinned comments: comments.pinned_at and the index that finds a post's pins

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 08:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_comments_post_pinned", ["post_id", "pinned_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_index("ix_comments_post_pinned")
        batch_op.drop_column("pinned_at")
