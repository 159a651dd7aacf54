"""personal data

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 04:20:55.634287
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("comment_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_events_comment_id"), ["comment_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_events_comment_id_comments"),
            "comments",
            ["comment_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("erasure_keeps_text", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("erasure_keeps_text")

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_events_comment_id_comments"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_events_comment_id"))
        batch_op.drop_column("comment_id")
