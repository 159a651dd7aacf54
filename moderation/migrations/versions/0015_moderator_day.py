"""The moderator's day: a moderator can be disabled (offboarding) rather than deleted; a webhook
endpoint can speak Slack's or Teams' incoming-webhook format

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-06 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("moderators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "format",
                sa.Enum(
                    "standard", "slack", "teams", name="webhookformat", native_enum=False, length=16
                ),
                server_default="standard",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("format")
    with op.batch_alter_table("moderators", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
