"""sketches by xxHash: the duplicate check's sketches and fingerprints hash shingles with XXH3
instead of blake2b, and split words as the learned check does ("don't" is one word)

Every sketch is made again from its comment's text where the duplicate check can still see it
(its window is seven days; a day more here), and cleared, with its index rows, where it cannot:
no comment keeps a sketch that the check would compare wrongly.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

BATCH = 500
WINDOW = dt.timedelta(days=8)
comments = sa.table(
    "comments",
    sa.column("id", sa.Integer),
    sa.column("post_id", sa.Integer),
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
    _sketch_again(op.get_bind())


def downgrade() -> None:
    # The old hash is gone with the old code: sketches are cleared, and the duplicate check
    # finds no copies until new comments arrive (what 0012 left before it filled them in).
    connection = op.get_bind()
    connection.execute(sketch_keys.delete())
    connection.execute(comments.update().values(text_fingerprint=None, text_sketch=None))


def _sketch_again(connection: sa.Connection) -> None:
    # The application's own functions: what is written now must match what it reads.
    from moderation.duplicates import sketch
    from moderation.personal_data import ERASED_TEXT

    since = dt.datetime.now(dt.UTC) - WINDOW
    connection.execute(sketch_keys.delete())
    connection.execute(
        comments.update()
        .where(comments.c.text_sketch.is_not(None), comments.c.submitted_at < since)
        .values(text_fingerprint=None, text_sketch=None)
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(
                comments.c.id, comments.c.post_id, comments.c.submitted_at, comments.c.body_text
            )
            .where(
                comments.c.id > last,
                comments.c.submitted_at >= since,
                comments.c.body_text != ERASED_TEXT,
            )
            .order_by(comments.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        batch = [(row, sketch(row.body_text)) for row in rows]
        connection.execute(
            comments.update().where(comments.c.id == sa.bindparam("comment_id")),
            [
                {"comment_id": row.id, "text_fingerprint": s.fingerprint, "text_sketch": s.packed()}
                for row, s in batch
            ],
        )
        connection.execute(
            sketch_keys.insert(),
            [
                {"comment_id": row.id, "key": key, "post_id": row.post_id, "submitted_at": at}
                for row, s in batch
                for key, at in zip(s.keys, [row.submitted_at] * len(s.keys), strict=True)
            ],
        )
        last = rows[-1].id
