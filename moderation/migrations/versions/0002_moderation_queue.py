"""moderation queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 04:03:40.355921
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_attempts_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_attempts_login"), ["login"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_attempts_network"), ["network"], unique=False)

    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("original_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("reject_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("claimed_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_comments_claimed_by_id_moderators"),
            "moderators",
            ["claimed_by_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("comment_policy_url", sa.String(length=2000), nullable=True))
        batch_op.add_column(
            sa.Column("reject_reasons", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("reject_reasons")
        batch_op.drop_column("comment_policy_url")

    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_comments_claimed_by_id_moderators"), type_="foreignkey"
        )
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claimed_by_id")
        batch_op.drop_column("reject_reason")
        batch_op.drop_column("original_text")

    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_attempts_network"))
        batch_op.drop_index(batch_op.f("ix_login_attempts_login"))
        batch_op.drop_index(batch_op.f("ix_login_attempts_at"))

    op.drop_table("login_attempts")
