"""mail: verified email, commenters' opt-ins, moderators' mail preference, the mail outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 09:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import moderation.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("verify_email", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("notify_decision", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("notify_replies", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("moderators", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "mail_preference",
                sa.Enum(
                    "each", "digest", "off", name="mailpreference", native_enum=False, length=16
                ),
                server_default="each",
                nullable=False,
            )
        )
    op.create_table(
        "verified_addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("verified_at", moderation.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verified_addresses")),
        sa.UniqueConstraint("address_hash", name=op.f("uq_verified_addresses_address_hash")),
    )
    op.create_table(
        "used_links",
        sa.Column("nonce", sa.String(length=40), nullable=False),
        sa.Column("used_at", moderation.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_used_links")),
    )
    with op.batch_alter_table("used_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_used_links_used_at"), ["used_at"], unique=False)
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("to_address", sa.String(length=254), nullable=True),
        sa.Column("moderator_id", sa.Integer(), nullable=True),
        sa.Column("comment_id", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "failed",
                "dropped",
                name="mailstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", moderation.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", moderation.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", moderation.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", moderation.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["comments.id"],
            name=op.f("fk_mail_outbox_comment_id_comments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["moderator_id"],
            ["moderators.id"],
            name=op.f("fk_mail_outbox_moderator_id_moderators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_outbox")),
    )
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mail_outbox_comment_id"), ["comment_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_mail_outbox_moderator_id"), ["moderator_id"], unique=False
        )
        batch_op.create_index(
            "ix_mail_outbox_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("mail_outbox")
    op.drop_table("used_links")
    op.drop_table("verified_addresses")
    with op.batch_alter_table("moderators", schema=None) as batch_op:
        batch_op.drop_column("mail_preference")
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_column("notify_replies")
        batch_op.drop_column("notify_decision")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("verify_email")
