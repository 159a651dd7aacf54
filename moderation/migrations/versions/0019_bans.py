"""Bans: emails, domains and networks barred from a site or every site; what a banned sender
is told (sites.ban_response, sites.banned_text)

Revision ID: 0019
Revises: 0021
Create Date: 2026-12-06 08:34:48
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum("email", "domain", "network", name="bankind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("value", sa.String(length=762), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["moderators.id"],
            name=op.f("fk_bans_created_by_id_moderators"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_bans_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bans")),
    )
    with op.batch_alter_table("bans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bans_site_id"), ["site_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bans_value"), ["value"], unique=False)
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "ban_response",
                sa.Enum("quiet", "refuse", name="banresponse", native_enum=False, length=16),
                server_default="quiet",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("banned_text", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("banned_text")
        batch_op.drop_column("ban_response")
    with op.batch_alter_table("bans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bans_value"))
        batch_op.drop_index(batch_op.f("ix_bans_site_id"))
    op.drop_table("bans")
