"""moderator identity: single sign-on identities, second factors, sessions a moderator can see

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 05:26:15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "passkeys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("moderator_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["moderator_id"],
            ["moderators.id"],
            name=op.f("fk_passkeys_moderator_id_moderators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkeys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_passkeys_credential_id")),
    )
    with op.batch_alter_table("passkeys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_passkeys_moderator_id"), ["moderator_id"], unique=False
        )

    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("moderator_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["moderator_id"],
            ["moderators.id"],
            name=op.f("fk_recovery_codes_moderator_id_moderators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_recovery_codes_code_hash")),
    )
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recovery_codes_moderator_id"), ["moderator_id"], unique=False
        )

    op.create_table(
        "second_factor_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("moderator_id", sa.Integer(), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["moderator_id"],
            ["moderators.id"],
            name=op.f("fk_second_factor_attempts_moderator_id_moderators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_second_factor_attempts")),
    )
    with op.batch_alter_table("second_factor_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_second_factor_attempts_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_second_factor_attempts_moderator_id"), ["moderator_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_second_factor_attempts_network"), ["network"], unique=False
        )

    op.create_table(
        "sso_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("moderator_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["moderator_id"],
            ["moderators.id"],
            name=op.f("fk_sso_identities_moderator_id_moderators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_identities")),
        sa.UniqueConstraint("issuer", "subject", name=op.f("uq_sso_identities_issuer")),
    )
    with op.batch_alter_table("sso_identities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sso_identities_moderator_id"), ["moderator_id"], unique=False
        )

    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("user_agent", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("network", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "method",
                sa.Enum("password", "sso", name="loginmethod", native_enum=False, length=16),
                server_default="password",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("second_factor_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("sso_identity_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("refresh_token", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_login_sessions_moderator_id"), ["moderator_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_login_sessions_sso_identity_id_sso_identities"),
            "sso_identities",
            ["sso_identity_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("moderators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("moderators", schema=None) as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_secret")

    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_login_sessions_sso_identity_id_sso_identities"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_login_sessions_moderator_id"))
        batch_op.drop_column("refreshed_at")
        batch_op.drop_column("refresh_token")
        batch_op.drop_column("sso_identity_id")
        batch_op.drop_column("second_factor_at")
        batch_op.drop_column("method")
        batch_op.drop_column("network")
        batch_op.drop_column("user_agent")
        batch_op.drop_column("last_seen_at")

    with op.batch_alter_table("sso_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_identities_moderator_id"))

    op.drop_table("sso_identities")
    with op.batch_alter_table("second_factor_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_second_factor_attempts_network"))
        batch_op.drop_index(batch_op.f("ix_second_factor_attempts_moderator_id"))
        batch_op.drop_index(batch_op.f("ix_second_factor_attempts_at"))

    op.drop_table("second_factor_attempts")
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_codes_moderator_id"))

    op.drop_table("recovery_codes")
    with op.batch_alter_table("passkeys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_passkeys_moderator_id"))

    op.drop_table("passkeys")
