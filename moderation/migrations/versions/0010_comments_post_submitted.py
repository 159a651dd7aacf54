"""comments: index the newest comments of a post (the duplicate check)

Without it the check read every comment of a post and sorted them, on every submission.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 13:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_comments_post_submitted", "comments", ["post_id", "submitted_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_comments_post_submitted", table_name="comments")
