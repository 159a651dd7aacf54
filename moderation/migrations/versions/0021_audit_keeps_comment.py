"""audit rows keep the comment's public id and the post key, so they outlive the comment

Revision ID: 0021
Revises: 0018
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("comment_public_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("post_key", sa.String(length=500), nullable=True))
    # Rows of comments still here learn their names now; those already orphaned stay blank.
    op.execute(
        "UPDATE audit_events SET"
        " comment_public_id = (SELECT comments.public_id FROM comments"
        " WHERE comments.id = audit_events.comment_id),"
        " post_key = (SELECT posts.key FROM comments JOIN posts ON posts.id = comments.post_id"
        " WHERE comments.id = audit_events.comment_id)"
        " WHERE comment_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("post_key")
        batch_op.drop_column("comment_public_id")
