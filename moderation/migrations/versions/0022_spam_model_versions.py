"""spam model versions: a stamp per scope of the learned model, so processes may keep its counts

Revision ID: 0022
Revises: 0016
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spam_model_versions",
        sa.Column("scope", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_spam_model_versions")),
    )
    # A scope without a stamp has learned nothing (scoring asks nothing of it): stamp those that
    # have learned.
    scopes = op.get_bind().execute(sa.text("SELECT DISTINCT scope FROM spam_tokens")).scalars()
    rows = [{"scope": scope, "version": secrets.randbits(62)} for scope in scopes]
    if rows:
        versions = sa.table(
            "spam_model_versions",
            sa.column("scope", sa.Integer),
            sa.column("version", sa.BigInteger),
        )
        op.bulk_insert(versions, rows)


def downgrade() -> None:
    op.drop_table("spam_model_versions")
