"""Hardening: comments.email_key (addresses matched casefolded, on SQLite too) and the duplicate
check's sketches (comments.text_fingerprint, text_sketch, the comment_sketch_keys index)

Existing rows are filled in: every comment's email_key, and the sketches of comments the
duplicate check can still see (its window is seven days; older ones are never compared).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 06:00:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BATCH = 500
comments = sa.table(
    "comments",
    sa.column("id", sa.Integer),
    sa.column("post_id", sa.Integer),
    sa.column("author_email", sa.String),
    sa.column("email_key", sa.String),
    sa.column("body_text", sa.Text),
    sa.column("submitted_at", sa.DateTime(timezone=True)),
    sa.column("text_fingerprint", sa.BigInteger),
    sa.column("text_sketch", sa.LargeBinary),
)
sketch_keys = sa.table(
    "comment_sketch_keys",
    sa.column("comment_id", sa.Integer),
    sa.column("key", sa.BigInteger),
    sa.column("post_id", sa.Integer),
    sa.column("submitted_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("email_key", sa.String(length=762), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("text_fingerprint", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("text_sketch", sa.LargeBinary(), nullable=True))
    op.create_table(
        "comment_sketch_keys",
        sa.Column("comment_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["comments.id"],
            name=op.f("fk_comment_sketch_keys_comment_id_comments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["posts.id"],
            name=op.f("fk_comment_sketch_keys_post_id_posts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("comment_id", "key", name=op.f("pk_comment_sketch_keys")),
    )
    op.create_index(
        "ix_comment_sketch_keys_post_key",
        "comment_sketch_keys",
        ["post_id", "key", "submitted_at", "comment_id"],
        unique=False,
    )
    op.create_index(op.f("ix_comments_email_key"), "comments", ["email_key"], unique=False)
    _fill_in(op.get_bind())


def _fill_in(connection: sa.Connection) -> None:
    # The application's own functions: what is written now must match what it reads.
    from moderation.duplicates import sketch
    from moderation.models import address_key
    from moderation.personal_data import ERASED_TEXT

    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    last = 0
    while True:
        rows = connection.execute(
            sa.select(comments.c.id, comments.c.author_email)
            .where(comments.c.id > last)
            .order_by(comments.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            comments.update().where(comments.c.id == sa.bindparam("comment_id")),
            [{"comment_id": i, "email_key": address_key(email)} for i, email in rows],
        )
        last = rows[-1].id
    recent = connection.execute(
        sa.select(comments.c.id, comments.c.post_id, comments.c.submitted_at, comments.c.body_text)
        .where(comments.c.submitted_at >= since, comments.c.body_text != ERASED_TEXT)
        .order_by(comments.c.id)
    ).all()
    for start in range(0, len(recent), BATCH):
        batch = [(row, sketch(row.body_text)) for row in recent[start : start + BATCH]]
        connection.execute(
            comments.update().where(comments.c.id == sa.bindparam("comment_id")),
            [
                {"comment_id": row.id, "text_fingerprint": s.fingerprint, "text_sketch": s.packed()}
                for row, s in batch
            ],
        )
        keys = [
            {"comment_id": row.id, "key": key, "post_id": row.post_id, "submitted_at": at}
            for row, s in batch
            for key, at in zip(s.keys, [row.submitted_at] * len(s.keys), strict=True)
        ]
        connection.execute(sketch_keys.insert(), keys)


def downgrade() -> None:
    op.drop_index("ix_comment_sketch_keys_post_key", table_name="comment_sketch_keys")
    op.drop_table("comment_sketch_keys")
    op.drop_index(op.f("ix_comments_email_key"), table_name="comments")
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_column("text_sketch")
        batch_op.drop_column("text_fingerprint")
        batch_op.drop_column("email_key")
