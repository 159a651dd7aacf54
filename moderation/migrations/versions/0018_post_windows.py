"""post windows: posts close and reopen, a consultation window, the post's publication date

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-06 08:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opens_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closes_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_text", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column(
                "time_zone",
                sa.String(length=64),
                server_default="Europe/London",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
        batch_op.drop_column("closed_text")
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_column("published_at")
        batch_op.drop_column("closes_at")
        batch_op.drop_column("opens_at")
