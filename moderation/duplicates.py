"""Finding a comment's copies on its post: a sketch of each text made once, at write time, and
an index over a few of its values, so the duplicate check costs the same however long the texts
and however busy the post.

A text's *shingles* are its word 3-grams (casefolded; the whole text when shorter); two texts'
resemblance is the Jaccard index of their shingle sets. The *sketch* keeps the 64 smallest
shingle hashes (a bottom-k sketch): it estimates the resemblance of two texts to about ±0.05 and
gives it exactly while both have fewer than 64 shingles (about 65 words, most comments). The
*fingerprint* hashes the whole word sequence, for exact copies.

The 8 smallest hashes of every comment are rows of ``comment_sketch_keys``, indexed by post and
hash. Two texts whose resemblance is at least 0.8 share one of those with probability about
1 - 0.2**8, so the check looks up its own 8, at most :data:`PER_KEY` newest comments each, and
compares sketches: at most 80 sketches of 64 values, never a stored text.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import operator
import re
import struct
from collections.abc import Sequence

import xxhash
from sqlalchemy import Table, bindparam, delete, func, insert, select, union_all
from sqlalchemy.orm import Session

from moderation.db import DriverQuery
from moderation.models import Comment, CommentSketchKey

SKETCH_SIZE = 64
INDEX_KEYS = 8
PER_KEY = 10

# A word: letters and digits, with one apostrophe inside ("don't"). The learned check's words
# too (moderation.learning), so a submission's text is split once for both.
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?")
_xxh3 = xxhash.xxh3_64_intdigest
_encode = operator.methodcaller("encode", "utf-8", "surrogatepass")


def _hash(text: str) -> int:
    """A stable 63-bit hash (stored, so never Python's per-process ``hash``): xxHash's XXH3, a
    third of blake2b's cost here, where a 1 kB comment has about 170 shingles to hash."""
    return _xxh3(_encode(text)) >> 1


def words(text: str) -> list[str]:
    """The text's words, casefolded, in order."""
    return _WORD.findall(text.casefold())


def shingles(text: str) -> set[str]:
    return _shingles_of(words(text))


def _shingles_of(found: list[str]) -> set[str]:
    if len(found) < 3:
        return {"\x00".join(found)}
    return set(map("\x00".join, zip(found, found[1:], found[2:], strict=False)))


@dataclasses.dataclass(frozen=True)
class Sketch:
    """What the duplicate check keeps of a text: its length in words, a hash of its word
    sequence, and the smallest hashes of its shingles, ascending."""

    words: int
    fingerprint: int
    hashes: tuple[int, ...]

    @property
    def keys(self) -> tuple[int, ...]:
        return self.hashes[:INDEX_KEYS]

    @functools.cached_property
    def members(self) -> frozenset[int]:
        return frozenset(self.hashes)

    @property
    def complete(self) -> bool:
        """Every shingle is in the sketch, so comparisons with it are exact."""
        return len(self.hashes) < SKETCH_SIZE

    def packed(self) -> bytes:
        return struct.pack(f">{len(self.hashes)}Q", *self.hashes)


def sketch(text: str, text_words: list[str] | None = None) -> Sketch:
    """The sketch of a text (whose :func:`words` may be given): linear in its length."""
    found = words(text) if text_words is None else text_words
    smallest = sorted(set(map(_xxh3, map(_encode, _shingles_of(found)))))[:SKETCH_SIZE]
    hashes = tuple(dict.fromkeys(h >> 1 for h in smallest))  # as _hash: 63 bits
    return Sketch(len(found), _hash("\x00".join(found)), hashes)


def resemblance(a: Sketch, b: Sketch, *, at_least: float = 0.0) -> float:
    """The Jaccard index of two texts' shingles, from their sketches (exact when both are
    complete): the share of the union's smallest hashes that both texts have. With
    ``at_least``, a pair that cannot reach it may answer 0.0 without working it out."""
    return _resemblance(a, b.hashes, at_least)


def _resemblance(a: Sketch, theirs: tuple[int, ...], at_least: float) -> float:
    shared = a.members.intersection(theirs)
    if a.complete and len(theirs) < SKETCH_SIZE:
        return len(shared) / (len(a.hashes) + len(theirs) - len(shared))
    # The union then has at least SKETCH_SIZE values, so its smallest are SKETCH_SIZE of them,
    # and at most all the shared ones are among them.
    if len(shared) < at_least * SKETCH_SIZE:
        return 0.0
    smallest = sorted(a.members.union(theirs))[:SKETCH_SIZE]
    return len(shared.intersection(smallest)) / len(smallest)


def similarity(a: str, b: str) -> float:
    """The exact Jaccard index of two texts' shingles (1.0: the same words in the same order)."""
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def record(session: Session, comment: Comment, text_sketch: Sketch | None = None) -> None:
    """Store a comment's sketch and its index keys (again, after its text changed)."""
    text_sketch = text_sketch or sketch(comment.body_text)
    comment.text_fingerprint = text_sketch.fingerprint
    comment.text_sketch = text_sketch.packed()
    session.flush()
    session.execute(delete(CommentSketchKey).where(CommentSketchKey.comment_id == comment.id))
    record_keys(session, [(comment.id, comment.post_id, comment.submitted_at, text_sketch)])


def record_keys(session: Session, comments: Sequence[tuple[int, int, dt.datetime, Sketch]]) -> None:
    """Index rows for comments already written with their sketch (one statement for many)."""
    rows = [
        {"comment_id": comment_id, "post_id": post_id, "submitted_at": at, "key": key}
        for comment_id, post_id, at, text_sketch in comments
        for key in text_sketch.keys
    ]
    if rows:
        # The table, not the mapped class: Core's executemany, not the ORM's bulk insert (a
        # third of the cost, on every submission).
        session.execute(insert(cast_table(CommentSketchKey)), rows)


def forget(session: Session, comment: Comment) -> None:
    """The comment's text is gone (erased): nothing is left to compare."""
    comment.text_fingerprint = None
    comment.text_sketch = None
    session.execute(delete(CommentSketchKey).where(CommentSketchKey.comment_id == comment.id))


@functools.cache
def _candidates() -> DriverQuery:
    """For each of a text's index keys, the newest comments of the post in the window that have
    it (an index range each, at most PER_KEY rows), kept when they share ``hits`` of the keys:
    their sketches, never their texts."""
    keys = cast_table(CommentSketchKey)
    comments = cast_table(Comment)
    per_key = [
        select(keys.c.comment_id)
        .where(
            keys.c.post_id == bindparam("post_id"),
            keys.c.key == bindparam(f"key{n}"),
            keys.c.submitted_at >= bindparam("since"),
        )
        .order_by(keys.c.submitted_at.desc())
        .limit(PER_KEY)
        .subquery()
        for n in range(INDEX_KEYS)
    ]
    found = union_all(*(select(q.c.comment_id) for q in per_key)).subquery()
    sharing = (
        select(found.c.comment_id)
        .group_by(found.c.comment_id)
        .having(func.count() >= bindparam("hits"))
        .subquery()
    )
    return DriverQuery(
        select(comments.c.text_fingerprint, comments.c.text_sketch).join(
            sharing, sharing.c.comment_id == comments.c.id
        )
    )


def cast_table(model: type[object]) -> Table:
    table = getattr(model, "__table__")  # noqa: B009 (mypy knows no __table__ on a model class)
    assert isinstance(table, Table)
    return table


def nearest(
    session: Session, post_id: int, text_sketch: Sketch, *, since: dt.datetime, at_least: float
) -> tuple[bool, float]:
    """Whether one of the post's comments since ``since`` is the same text (its fingerprint),
    and else the highest resemblance of those that may resemble it (0.0 below ``at_least``):
    what the duplicate check asks, without a :class:`Sketch` made for each."""
    best = 0.0
    for fingerprint, packed in recent(session, post_id, text_sketch, since=since):
        if fingerprint == text_sketch.fingerprint:
            return True, 1.0
        theirs = struct.unpack(f">{len(packed) // 8}Q", packed)
        best = max(best, _resemblance(text_sketch, theirs, at_least))
    return False, best


def recent(
    session: Session, post_id: int, text_sketch: Sketch, *, since: dt.datetime
) -> dict[tuple[int, bytes], None]:
    """The fingerprints and packed sketches (each once) of the post's comments since ``since``
    that share enough of the text's index keys."""
    keys = list(text_sketch.keys) or [0]
    # A text resembling this one at 0.8 shares about 8 * 0.8 of its keys; fewer than 2 of 8
    # happens about once in 10,000 (texts with fewer keys must share them all).
    params: dict[str, object] = {"post_id": post_id, "since": since, "hits": min(2, len(keys))}
    params |= {f"key{n}": keys[min(n, len(keys) - 1)] for n in range(INDEX_KEYS)}
    rows = _candidates().rows(session, params)
    return dict.fromkeys(
        (fingerprint, packed)
        for fingerprint, packed in rows
        if fingerprint is not None and packed is not None
    )
