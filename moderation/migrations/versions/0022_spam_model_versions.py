"""spam model versions: where each scope of the learned model stands and which tokens changed,
so processes may keep its counts

Revision ID: 0022
Revises: 0017
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spam_model_versions",
        sa.Column("scope", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_spam_model_versions")),
    )
    op.create_table(
        "spam_model_changes",
        sa.Column("scope", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tokens", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("scope", "seq", name=op.f("pk_spam_model_changes")),
    )
    # A scope without a version has learned nothing (scoring asks nothing of it): give one to
    # each scope that has learned.
    scopes = op.get_bind().execute(sa.text("SELECT DISTINCT scope FROM spam_tokens")).scalars()
    rows = [{"scope": scope, "epoch": secrets.randbits(62), "seq": 0} for scope in scopes]
    if rows:
        versions = sa.table(
            "spam_model_versions",
            sa.column("scope", sa.Integer),
            sa.column("epoch", sa.BigInteger),
            sa.column("seq", sa.BigInteger),
        )
        op.bulk_insert(versions, rows)


def downgrade() -> None:
    op.drop_table("spam_model_changes")
    op.drop_table("spam_model_versions")
