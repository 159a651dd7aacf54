"""The learned spam model: spam_tokens, and on comments what the filter said and what a decision
taught; sites.spam_threshold

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 06:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spam_tokens",
        sa.Column("scope", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token", sa.String(length=48), nullable=False),
        sa.Column("spam", sa.Integer(), nullable=False),
        sa.Column("ham", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "token", name=op.f("pk_spam_tokens")),
    )
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("spam_threshold", sa.Double(), server_default="0.9", nullable=False)
        )
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verdict", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("spam_score", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("learned", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("learned_tokens", sa.JSON(), nullable=True))
        batch_op.create_index(
            "ix_comments_status_spam_score", ["status", "spam_score"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_index("ix_comments_status_spam_score")
        batch_op.drop_column("learned_tokens")
        batch_op.drop_column("learned")
        batch_op.drop_column("spam_score")
        batch_op.drop_column("verdict")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("spam_threshold")
    op.drop_table("spam_tokens")
