"""The spam filter that learns from each site's decisions: tokens, the model, learning, scoring.

A comment becomes a bag of tokens: its words (spelling runs like "plzzzz" squashed), word pairs,
and the shapes spam uses: links and their domains, link text, e-mail addresses, phone numbers,
sums of money, repeated characters, capitals, length, words shared with the post's title and
the author's name. The model counts, per token, how many spam and legitimate decisions contained
it, for each site (``scope`` = the site's id) and for the whole installation (``scope`` 0). A
site's estimate adds the two, so its own decisions weigh twice and a new site starts from
everyone's. Each token's spam probability is Robinson's smoothed estimate from Laplace-smoothed
per-class rates, and the strongest tokens are combined with Fisher's method (as in SpamBayes):
the score is near 1 for spam, near 0 for legitimate, near 0.5 when the evidence is mixed or weak.

Counts change in the transaction of the decision itself, by atomic upserts in a fixed order
(several processes may learn at once, on SQLite and PostgreSQL). Each comment keeps the tokens it
taught, so unlearning (restore, undo, erasure) removes exactly what it added, and a token no
decision holds any more is deleted.

Every change to a scope's counts also advances the scope's version (``spam_model_versions``:
a random epoch and a change count) and logs which tokens it changed (``spam_model_changes``), in
the same transaction. A process keeps each scope's counts whole in memory: scoring reads the two
versions (two rows by primary key) and, when one has moved, reads again only the tokens the
logged changes name. Since a decision in any process moves the version, no process scores with
counts older than the last committed decision; a transaction that has itself changed the model
reads the database directly (what it sees is not yet everyone's).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import itertools
import json
import math
import operator
import re
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Delete, Insert, Table, bindparam, case, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from moderation import duplicates
from moderation.db import DriverQuery
from moderation.models import (
    Comment,
    CommentStatus,
    SpamModelChange,
    SpamModelVersion,
    SpamToken,
)

INSTALLATION = 0  # the scope of the installation-wide model
DOCUMENTS = ""  # the token whose counts are the number of spam and legitimate decisions
MAX_TOKENS = 150  # tokens per comment, learned and scored: the cost per submission is bounded
MAX_TOKEN_CHARS = 48
MAX_LINKS = 10  # links whose domains become tokens
# SpamBayes' defaults: Robinson's strength of the 0.5 prior for rare tokens, and the least
# distance from 0.5 for a token to count as evidence.
PRIOR_STRENGTH = 0.45
MIN_DEVIATION = 0.1
# Auto-filing needs this many decisions of each kind in the model the site uses (its own plus
# the installation's), and this many of the site's own; below either, "likely spam" only holds.
MIN_EACH_KIND = 100
MIN_SITE_DECISIONS = 20
KEPT_CHANGES = 1000  # logged changes per scope: a process further behind reads the scope again
KEPT_TOKENS = 200_000  # a scope with more tokens is not kept in memory, but read per score


class Lesson(enum.StrEnum):
    """What a decision taught the model about a comment."""

    SPAM = "spam"
    LEGITIMATE = "legitimate"


# Tokens --------------------------------------------------------------------------------------

# Every expression here is linear: no nested quantifiers, bounded repeats. A run of a class
# that what follows it cannot start is possessive (``{1,63}+``), and a match may only start where
# such a run starts (the lookbehinds): else a 10 kB "a-a-a-..." retries every shorter run from
# every position, 50 ms where these take under 10 (tests/test_worst_case.py).
_SQUASH = re.compile(r"(.)\1{2,}")
_ANCHOR = re.compile(
    r"<a\s[^<>]{0,500}?href\s*=\s*[\"']?([^\"'\s>]{1,500})[^<>]{0,500}>([^<]{0,200})"
)
# A link: marked (a scheme or "www."), or a bare domain with one of the endings spam uses.
_MARKED = r"(?:https?://|www\.)[^\s<>\"']{1,300}"
_ENDINGS = r"\.(?:com|net|org|info|biz|ly|me|io|tv|co|uk|ru|xyz)\b"
_BARE = r"(?<![a-z0-9.])\b[a-z0-9-]{1,63}+(?:\.[a-z0-9-]{1,63}+){0,4}" + _ENDINGS
_MARKED_URL = re.compile(_MARKED, re.IGNORECASE)
_BARE_URL = re.compile(_BARE, re.IGNORECASE)
_BARE_ENDING = re.compile(_ENDINGS, re.IGNORECASE)
# A run of the characters a bare domain is made of (possessive: read once).
_DOMAIN_RUN = re.compile(r"[a-z0-9.-]*+", re.IGNORECASE)
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}+@[\w-]{1,63}+(?:\.[\w-]{1,63}+){1,5}")
# Searched for, never extracted: a phone shape ("+44 ..." included, as its digits match) and a
# sum of money ("$5", "5 dollars"). Each begins with a plain character class, so the search
# skips to the digits (and currency signs) instead of trying the pattern at every position.
_PHONE = re.compile(r"\d[\d ().-]{6,18}\d")
_MONEY = re.compile(
    r"[$£€\d](?:(?<=[$£€])\s?\d|(?<=\d)\s?(?:[$£€]|usd\b|gbp\b|dollars?\b|pounds?\b))",
    re.IGNORECASE,
)
_REPEAT = re.compile(r"(\S)\1{2,}")
_TRIPLE = re.compile(r"(.)\1\1")
_WORD_RUN = re.compile(r"([^\W_])\1\1")
_DIGIT = re.compile(r"\d")


def _host(url: str) -> str:
    host = url.casefold().split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    return host.split("@")[-1].split(":")[0].removeprefix("www.").strip(".")


def _length(words: int) -> str:
    if words <= 3:
        return "1-3"
    if words <= 10:
        return "4-10"
    if words <= 30:
        return "11-30"
    return "31-100" if words <= 100 else "100+"


def tokens(
    body: str, *, author_name: str = "", title: str = "", words: list[str] | None = None
) -> list[str]:
    """The comment's distinct tokens, structure first, at most :data:`MAX_TOKENS`; ``words``,
    when given, are the body's :func:`moderation.duplicates.words`.

    Run on every submission, so written for C-level passes over the text: no per-character or
    per-word Python step where one call over the whole text or word list gives the same tokens.
    """
    found: dict[str, None] = {}

    def add(token: str) -> None:
        found.setdefault(token[:MAX_TOKEN_CHARS], None)

    text = body[:20_000]
    lowered = text.casefold()
    # Structure: links (bare or marked up) and their domains, their text, contact shapes.
    urls = links(text)
    if "<" in text:
        for href, label in _ANCHOR.findall(text):
            urls.append(href)
            if label.strip():
                add("link text:" + " ".join(duplicates.words(label)[:4]))
    add(f"links:{min(len(urls), 3)}")
    for url in urls[:MAX_LINKS]:
        host = _host(url)
        labels = host.split(".")
        add("link:" + host)
        if len(labels) > 2:
            add("link:" + ".".join(labels[-2:]))
        if "?" in url or "=" in url:
            add("link:query")
    if "@" in text and _EMAIL.search(text):
        add("shape:email")
    if _DIGIT.search(text):  # both begin at a digit (a sum of money too: "$5", "5 dollars")
        for name, pattern in (("phone", _PHONE), ("money", _MONEY)):
            if pattern.search(text):
                add("shape:" + name)
    # Casefolding that keeps the length maps character to character, so the text has no run of
    # three before its casefolded form's first (and none at all without one): nothing to report
    # or squash there.
    first = _TRIPLE.search(lowered) if len(lowered) == len(text) else None
    runs = first is not None or len(lowered) != len(text)
    if runs:
        for match in _REPEAT.finditer(text, first.start() if first is not None else 0):
            char = match.group(1)
            add("repeat:" + ("letter" if char.isalpha() else "digit" if char.isdigit() else char))
    letters, upper = _letters_and_capitals(text)
    if letters >= 10:
        share = upper / letters
        add("capitals:" + ("most" if share > 0.6 else "some" if share > 0.2 else "few"))
    if words is None or len(body) > len(text):
        words = duplicates.words(text)
    longest = max(map(len, words), default=0)
    if longest > 30:
        words = [w for w in words if len(w) <= 30]
    distinct = dict.fromkeys(words)  # each once, in order of first use
    # Only a run of letters or digits can be inside a word (most runs are "!!!" or "...").
    if runs and words and _WORD_RUN.search(lowered, first.start() if first is not None else 0):
        # Each word once, all in one pass: joined by single spaces, no run crosses two words.
        spelled = list(distinct)
        squashed = _SQUASH.sub(r"\1", " ".join(spelled)).split(" ")
        words = list(map(dict(zip(spelled, squashed, strict=True)).__getitem__, words))
        distinct = dict.fromkeys(words)
    add("length:" + _length(len(words)))
    title_words = _title_words(title)
    if title_words:
        shared = not title_words.isdisjoint(distinct)
        add("title:" + ("shares words" if shared else "no words in common"))
    name_words = duplicates.words(author_name)
    add(f"name:words:{min(len(name_words), 4)}")
    if any(map(str.isdigit, author_name)):
        add("name:has digits")
    if not distinct.keys().isdisjoint(name_words):
        add("name:in text")
    for word in name_words[:4]:
        add("name:" + word)
    # Words (each once; one letter only when it is not ASCII), then word pairs in chunks until
    # there are enough tokens: adding more than needed changes nothing, as only the first
    # MAX_TOKENS are kept.
    for letter in _ONE_ASCII.intersection(distinct):
        del distinct[letter]
    found.update(distinct)
    pairs: Iterator[str] = map(" ".join, itertools.pairwise(words))
    if 2 * longest + 1 > MAX_TOKEN_CHARS:
        pairs = (pair[:MAX_TOKEN_CHARS] for pair in pairs)
    while len(found) < MAX_TOKENS:
        chunk = dict.fromkeys(itertools.islice(pairs, MAX_TOKENS - len(found)))
        if not chunk:
            break
        found.update(chunk)
    return list(itertools.islice(found, MAX_TOKENS))


@functools.lru_cache(maxsize=1024)  # a post's title, for each of its comments
def _title_words(title: str) -> frozenset[str]:
    return frozenset(duplicates.words(title))


# The one-character words left out: an ASCII letter or digit, casefolded.
_ONE_ASCII = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_NOT_ASCII = re.compile(r"[^\x00-\x7f]+")
_NOT_LETTERS = bytes(c for c in range(128) if not chr(c).isalpha())
_NOT_CAPITALS = bytes(c for c in range(128) if not chr(c).isupper())


def _letters_and_capitals(text: str) -> tuple[int, int]:
    """How many letters the text has, and how many of them are capitals: the ASCII ones
    counted by bytes' translate (one C pass), the others (often a few) one by one."""
    data = text.encode("ascii", "ignore")
    letters = len(data.translate(None, _NOT_LETTERS))
    upper = len(data.translate(None, _NOT_CAPITALS))
    if len(data) != len(text):
        others = "".join(filter(str.isalpha, "".join(_NOT_ASCII.findall(text))))
        letters += len(others)
        upper += sum(map(str.isupper, others))
    return letters, upper


def links(text: str, most: int = MAX_LINKS) -> list[str]:
    """The text's first ``most`` links in order, as ``re.findall(_MARKED | _BARE)`` finds them,
    for a fraction of its cost: that expression tries a bare domain at every word of the text,
    60 us per 1 kB.

    A bare domain is a run of domain characters holding one of the endings, so it is looked for
    only in those runs (each found from its ending: forwards, and backwards in the reversed
    text), each search bounded to its run and the character after it (the ``\\b`` looks at it).
    Marked links are found by their own, fast expression, and the two are merged as the
    alternation would: the earlier wins, a marked link at the same place.
    """
    endings = [match.start() for match in _BARE_ENDING.finditer(text)]
    if not endings:
        return _MARKED_URL.findall(text)[:most]
    size = len(text)
    backwards = text[::-1]
    found: list[str] = []
    pos = 0
    next_ending = 0
    marked = _MARKED_URL.search(text)
    while True:
        if marked is not None and marked.start() < pos:  # else still the first from pos on
            marked = _MARKED_URL.search(text, pos)
        limit = marked.start() if marked is not None else size
        bare = None
        while next_ending < len(endings):
            dot = endings[next_ending]
            if dot < pos:  # a domain ending here would start before pos
                next_ending += 1
                continue
            run_start = dot - _domain_run(backwards, size - dot)
            start = max(pos, run_start)
            if start >= limit:
                break  # a marked link comes first
            run_end = dot + _domain_run(text, dot)
            bare = _BARE_URL.search(text, start, min(size, run_end + 1))
            if bare is not None:
                break
            while next_ending < len(endings) and endings[next_ending] < run_end:
                next_ending += 1  # nothing in this run from start on
        match = bare if bare is not None and bare.start() < limit else marked
        if match is None or len(found) == most:
            return found
        found.append(match.group())
        pos = match.end()


def _domain_run(text: str, at: int) -> int:
    """How many domain characters the text has from ``at`` on."""
    run = _DOMAIN_RUN.match(text, at)
    return run.end() - at if run is not None else 0


def comment_tokens(comment: Comment) -> list[str]:
    """What a decision on this comment teaches: the text as its author submitted it."""
    return tokens(
        comment.original_text or comment.body_text,
        author_name=comment.author_name,
        title=comment.post.title,
    )


# Learning ------------------------------------------------------------------------------------


_WROTE = "moderation.learning.wrote"  # session.info: the transaction that changed the model


def _record_changes(session: Session, changed: Mapping[int, Iterable[str] | None]) -> None:
    """Advance the changed scopes' versions, in scope order (the first rows a learning
    transaction locks, so two of them wait for each other here rather than deadlock later), and
    log which tokens changed (None: any)."""
    if not changed:
        return
    session.info[_WROTE] = session.get_transaction()
    advance, log, prune = _change_statements(session.get_bind().dialect.name)
    # A statement per scope (one or two), each the same every time: a multi-row VALUES is a new
    # statement for SQLAlchemy to compile on every decision.
    for scope in sorted(changed):
        seq = session.execute(advance, {"scope": scope, "epoch": secrets.randbits(62)}).scalar_one()
        tokens_ = changed[scope]
        logged = None if tokens_ is None else sorted(set(tokens_))
        session.execute(log, {"scope": scope, "seq": seq, "tokens": logged})
        if seq > KEPT_CHANGES:
            session.execute(prune, {"scope": scope, "oldest": seq - KEPT_CHANGES})


@functools.cache
def _change_statements(dialect: str) -> tuple[Insert, Insert, Delete]:
    """Advance a scope's version (returning its change count), log a change (an upsert: rows a
    deleted model left behind are overwritten, never in the way), drop changes no longer kept."""
    versions = cast(Table, SpamModelVersion.__table__)
    changes = cast(Table, SpamModelChange.__table__)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    advance = (
        insert(versions)
        .values(scope=bindparam("scope"), epoch=bindparam("epoch"), seq=1)
        .on_conflict_do_update(index_elements=[versions.c.scope], set_={"seq": versions.c.seq + 1})
        .returning(versions.c.seq)
    )
    logged = insert(changes).values(
        scope=bindparam("scope"), seq=bindparam("seq"), tokens=bindparam("tokens")
    )
    log = logged.on_conflict_do_update(
        index_elements=[changes.c.scope, changes.c.seq], set_={"tokens": logged.excluded.tokens}
    )
    prune = delete(changes).where(
        changes.c.scope == bindparam("scope"), changes.c.seq <= bindparam("oldest")
    )
    return advance, log, prune


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Add counts to tokens, creating them as needed, in (scope, token) order so that two
    transactions learning overlapping tokens lock them in the same order (no deadlock)."""
    if not rows:
        return
    rows.sort(key=lambda r: (r["scope"], r["token"]))
    changed: dict[int, list[str] | None] = {}
    for row in rows:
        tokens_ = changed.setdefault(row["scope"], [])
        if tokens_ is not None:
            tokens_.append(row["token"])
    _record_changes(session, changed)
    # One statement, many parameter sets: a multi-row VALUES of a new length each time was a new
    # statement for SQLAlchemy to compile, about 50 ms a decision.
    session.execute(_upsert_statement(session.get_bind().dialect.name), rows)


@functools.cache
def _upsert_statement(dialect: str) -> Insert:
    table = cast(Table, SpamToken.__table__)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.scope, table.c.token],
        set_={
            "spam": case(
                (
                    table.c.spam + statement.excluded.spam > 0,
                    table.c.spam + statement.excluded.spam,
                ),
                else_=0,
            ),
            "ham": case(
                (table.c.ham + statement.excluded.ham > 0, table.c.ham + statement.excluded.ham),
                else_=0,
            ),
        },
    )


def _change(
    session: Session, site_id: int, tokens_: Sequence[str], lesson: Lesson, step: int
) -> None:
    spam, ham = (step, 0) if lesson is Lesson.SPAM else (0, step)
    everything = [DOCUMENTS, *tokens_]
    rows = [
        {"scope": scope, "token": token, "spam": spam, "ham": ham}
        for scope in (INSTALLATION, site_id)
        for token in everything
    ]
    _upsert(session, rows)
    if step < 0:
        # Rows this transaction has just locked: what no decision holds any more goes.
        session.execute(
            delete(SpamToken).where(
                SpamToken.scope.in_([INSTALLATION, site_id]),
                SpamToken.token.in_(everything),
                SpamToken.spam <= 0,
                SpamToken.ham <= 0,
            )
        )


def lesson_for(status: CommentStatus) -> Lesson | None:
    """What a comment in this status teaches: approved is legitimate, spam is spam, and
    pending (restored, undone), rejected (off-topic or rude is not spam) teach nothing."""
    if status is CommentStatus.APPROVED:
        return Lesson.LEGITIMATE
    if status is CommentStatus.SPAM:
        return Lesson.SPAM
    return None


def follow_decision(session: Session, comment: Comment, *, teach: bool = True) -> None:
    """Bring the model in line with the comment's new status: learn, unlearn or relearn.

    Called by the one function that changes a comment's status, so every route teaches. A
    deleted comment keeps what its decision taught (deleting is housekeeping, not a verdict);
    ``teach`` False (an automatic approval) unlearns but teaches nothing new.
    """
    if comment.status is CommentStatus.DELETED:
        return
    wanted = lesson_for(comment.status) if teach else None
    current = Lesson(comment.learned) if comment.learned else None
    if wanted is current:
        return
    site_id = comment.post.site_id
    learned: list[str] | None = None
    if current is not None:
        _change(session, site_id, comment.learned_tokens or [], current, -1)
    if wanted is not None:
        learned = comment_tokens(comment)
        _change(session, site_id, learned, wanted, +1)
    session.execute(
        update(Comment)
        .where(Comment.id == comment.id)
        .values(learned=wanted.value if wanted else None, learned_tokens=learned)
        .execution_options(synchronize_session=False)
    )
    comment.learned = wanted.value if wanted else None
    comment.learned_tokens = learned


def apply_lesson(session: Session, comment: Comment) -> None:
    """Add what the comment's recorded lesson taught (an imported decision)."""
    if comment.learned:
        _change(
            session,
            comment.post.site_id,
            comment.learned_tokens or [],
            Lesson(comment.learned),
            +1,
        )


def add_counts(session: Session, rows: list[dict[str, Any]]) -> None:
    """Add token counts as they are (an imported model)."""
    _record_changes(session, {row["scope"]: None for row in rows})
    for start in range(0, len(rows), 500):
        _upsert(session, rows[start : start + 500])


def forget_comments(session: Session, comments: Iterable[Comment]) -> int:
    """Unlearn what these comments taught (before their author's data is erased)."""
    forgotten = 0
    scopes: set[int] = set()
    for comment in comments:
        if comment.learned:
            _change(
                session,
                comment.post.site_id,
                comment.learned_tokens or [],
                Lesson(comment.learned),
                -1,
            )
            session.execute(
                update(Comment)
                .where(Comment.id == comment.id)
                .values(learned=None, learned_tokens=None)
                .execution_options(synchronize_session=False)
            )
            comment.learned, comment.learned_tokens = None, None
            forgotten += 1
            scopes.update((INSTALLATION, comment.post.site_id))
    if scopes:
        # The change log named these comments' tokens when they were learned and again now:
        # it forgets every change of these scopes (a process behind reads them whole again).
        changes = cast(Table, SpamModelChange.__table__)
        session.execute(delete(changes).where(changes.c.scope.in_(sorted(scopes))))
        _record_changes(session, dict.fromkeys(scopes))
    return forgotten


# Scoring -------------------------------------------------------------------------------------


class Evidence(NamedTuple):
    """One token that weighed in a score: its spam probability (0 to 1)."""

    token: str
    probability: float


@dataclasses.dataclass(frozen=True)
class Score:
    """The spam score (0 legitimate to 1 spam), its strongest evidence and what it rests on."""

    score: float
    evidence: tuple[Evidence, ...]
    site_decisions: int
    spam_decisions: int
    legitimate_decisions: int

    @property
    def confident(self) -> bool:
        """Enough decisions, the site's own and in all, to let a score file comments as spam."""
        return (
            self.site_decisions >= MIN_SITE_DECISIONS
            and min(self.spam_decisions, self.legitimate_decisions) >= MIN_EACH_KIND
        )


@functools.cache
def _counts_statement(dialect: str) -> TextClause:
    """One indexed query (the primary key) for the tokens' counts in the site's and the
    installation's scope: the tokens go in as one parameter (a JSON array on SQLite, an array on
    PostgreSQL), so the statement is the same whatever their number."""
    if dialect == "postgresql":
        where = "token = ANY(:tokens)"
        tokens_param = bindparam("tokens", type_=postgresql.ARRAY(SpamToken.token.type))
    else:
        where = "token IN (SELECT value FROM json_each(:tokens))"
        tokens_param = bindparam("tokens")
    return text(
        "SELECT scope, token, spam, ham FROM spam_tokens "  # noqa: S608 (constant text)
        f"WHERE scope IN (0, :site) AND {where}"
    ).bindparams(tokens_param)


_VERSIONS = DriverQuery(
    text("SELECT scope, epoch, seq FROM spam_model_versions WHERE scope IN (0, :site)")
)


def _chi2q(chi: float, freedom: int) -> float:
    """P(X >= chi) for a chi-square variable with an even number of degrees of freedom."""
    half = chi / 2.0
    term = total = math.exp(-half)
    for i in range(1, freedom // 2):
        term *= half / i
        total += term
    return min(total, 1.0)


def token_probability(spam: float, ham: float, spam_docs: float, ham_docs: float) -> float:
    """Robinson's f(w): the token's share of per-class rates (Laplace-smoothed, so one class's
    few decisions do not make every common word certain), drawn to 0.5 when the token is rare."""
    spam_rate = (spam + 1) / (spam_docs + 2)
    ham_rate = (ham + 1) / (ham_docs + 2)
    seen = spam + ham
    share = spam_rate / (spam_rate + ham_rate)
    return (PRIOR_STRENGTH * 0.5 + seen * share) / (PRIOR_STRENGTH + seen)


_ABSENT = (0, 0)  # a token the scope's model does not have


@dataclasses.dataclass
class _Kept:
    """A scope's counts as this process last read them, at version (epoch, seq); None when the
    scope has more than :data:`KEPT_TOKENS` tokens (then read per score)."""

    epoch: int
    seq: int
    counts: dict[str, tuple[int, int]] | None


_KEPT: dict[int, _Kept] = {}  # per scope, shared by the process's threads
_KEEPING = threading.Lock()  # held while a scope's kept counts are read or brought up to date


def _scope_rows(
    session: Session, scope: int, tokens_: Sequence[str] | None = None
) -> dict[str, tuple[int, int]]:
    """The scope's counts of these tokens (every token: at most KEPT_TOKENS + 1 of them)."""
    if tokens_ is None:
        whole = session.execute(
            select(SpamToken.token, SpamToken.spam, SpamToken.ham)
            .where(SpamToken.scope == scope)
            .limit(KEPT_TOKENS + 1)
        )
        return {token: (spam, ham) for token, spam, ham in whole}
    dialect = session.get_bind().dialect.name
    some = session.execute(
        _counts_statement(dialect),
        {"site": scope, "tokens": tokens_ if dialect == "postgresql" else json.dumps(tokens_)},
    )
    return {token: (spam, ham) for row_scope, token, spam, ham in some if row_scope == scope}


def _catch_up(session: Session, scope: int, kept: _Kept, seq: int) -> bool:
    """Bring kept counts to change ``seq`` by reading again the tokens the changes since name;
    False when the log cannot say (a change of any token, or changes no longer kept)."""
    if kept.counts is None:
        return False
    logged = session.execute(
        select(SpamModelChange.tokens)
        .where(
            SpamModelChange.scope == scope,
            SpamModelChange.seq > kept.seq,
            SpamModelChange.seq <= seq,
        )
        .order_by(SpamModelChange.seq)
    ).all()
    if len(logged) != seq - kept.seq or any(tokens_ is None for (tokens_,) in logged):
        return False
    changed = sorted({token for (tokens_,) in logged for token in tokens_ or ()})
    fresh = _scope_rows(session, scope, changed)
    for token in changed:
        if token in fresh:
            kept.counts[token] = fresh[token]
        else:
            kept.counts.pop(token, None)
    kept.seq = seq
    return True


def _kept_counts(
    session: Session, scope: int, epoch: int, seq: int
) -> dict[str, tuple[int, int]] | None:
    with _KEEPING:
        kept = _KEPT.get(scope)
        if kept is not None and kept.epoch == epoch:
            if kept.counts is None:
                return None  # too large to keep: not read whole again at every change
            if kept.seq == seq or (kept.seq < seq and _catch_up(session, scope, kept, seq)):
                return kept.counts
        counts: dict[str, tuple[int, int]] | None = _scope_rows(session, scope)
        if counts is not None and len(counts) > KEPT_TOKENS:
            counts = None  # too many to keep: read per score
        _KEPT[scope] = _Kept(epoch, seq, counts)
        return counts


def _scope_counts(
    session: Session,
    scopes: Sequence[int],
    versions: Mapping[int, tuple[int, int]],
    wanted: Sequence[str],
) -> tuple[list[dict[str, tuple[int, int]]], bool]:
    """Each scope's counts (a token absent from a dict has none): kept in memory while the
    scope's version stands, caught up from the change log when it moves, read from the database
    for a transaction that has changed the model itself or a scope too large to keep. A scope
    without a version has never learned anything. The versions are read first, so counts read
    after them are never older than their version. Also whether every scope's counts are whole
    (not only the wanted tokens')."""
    wrote = session.info.get(_WROTE) is session.get_transaction()
    found: list[dict[str, tuple[int, int]] | None] = []
    for scope in scopes:
        if scope not in versions:
            found.append({})
        elif wrote:
            found.append(None)
        else:
            found.append(_kept_counts(session, scope, *versions[scope]))
    read = [
        counts if counts is not None else _scope_rows(session, scope, wanted)
        for scope, counts in zip(scopes, found, strict=True)
    ]
    return read, None not in found


class _Model:
    """What a score reads: the scopes' counts and decision totals, and each token's weight once
    worked out (kept while the scopes' versions stand, so that a token scored before costs a
    lookup)."""

    def __init__(self, read: list[dict[str, tuple[int, int]]], *, site_scoped: bool) -> None:
        self.read = read
        installation = read[0].get(DOCUMENTS, _ABSENT)
        site = read[-1].get(DOCUMENTS, _ABSENT) if site_scoped else _ABSENT
        # The mean of the two scopes' counts: the site's own decisions weigh as much as every
        # site's together (the installation's include the site's, so theirs count 1.5 times).
        self.share = 0.5 if site_scoped else 1.0
        self.spam_documents = self.share * (site[0] + installation[0])
        self.ham_documents = self.share * (site[1] + installation[1])
        self.site_decisions = sum(site) if site_scoped else sum(installation)
        self.spam_decisions, self.legitimate_decisions = installation
        self.weights: dict[str, _Weight | None] = {}

    def weigh(self, token: str) -> _Weight | None:
        """The token as evidence, or None when it is too weak to be any (or unknown)."""
        spam = ham = 0
        for counts in self.read:
            token_spam, token_ham = counts.get(token, _ABSENT)
            spam += token_spam
            ham += token_ham
        weight = None
        if spam or ham:
            share = self.share
            p = token_probability(
                share * spam, share * ham, self.spam_documents, self.ham_documents
            )
            strength = abs(p - 0.5)
            if strength >= MIN_DEVIATION:
                weight = (strength, Evidence(token, p), math.log(p), math.log1p(-p))
        if len(self.weights) < KEPT_TOKENS:
            self.weights[token] = weight
        return weight


# A token's evidence, with what sorting and combining it needs: its distance from 0.5, then the
# logarithms of its spam probability and of its complement.
_Weight = tuple[float, Evidence, float, float]
_UNWEIGHED: Any = object()  # a token the model has not weighed yet


# Per site (None: the installation's alone), the model last scored with and the versions of the
# scopes it was read at.
_MODELS: dict[int | None, tuple[tuple[tuple[int, int] | None, ...], _Model]] = {}


def _model(session: Session, site_id: int | None, tokens_: Sequence[str]) -> _Model:
    scopes = [INSTALLATION, site_id] if site_id else [INSTALLATION]
    versions = {
        scope: (epoch, seq) for scope, epoch, seq in _VERSIONS.rows(session, {"site": scopes[-1]})
    }
    key = tuple(map(versions.get, scopes))
    kept = _MODELS.get(site_id)
    wrote = session.info.get(_WROTE) is session.get_transaction()
    if kept is not None and kept[0] == key and not wrote:
        return kept[1]
    read, whole = _scope_counts(session, scopes, versions, [DOCUMENTS, *tokens_])
    model = _Model(read, site_scoped=site_id is not None)
    if whole:
        _MODELS[site_id] = (key, model)
    return model


def score(session: Session, site_id: int | None, tokens_: Sequence[str]) -> Score:
    """Score tokens with the site's model refining the installation's (their counts averaged)."""
    model = _model(session, site_id, tokens_)
    weights: list[_Weight] = []
    if model.spam_documents and model.ham_documents:
        # Only tokens some decision holds can weigh (most word pairs of a new comment are
        # new): the others cost a lookup in each scope here, not a weighing.
        first, last = model.read[0], model.read[-1]
        distinct = [t for t in dict.fromkeys(tokens_) if t in first or t in last]
        known = list(map(model.weights.get, distinct, itertools.repeat(_UNWEIGHED)))
        if _UNWEIGHED in known:
            known = [
                model.weigh(token) if weight is _UNWEIGHED else weight
                for token, weight in zip(distinct, known, strict=True)
            ]
        weights = list(filter(None, known))
    weights.sort(key=_STRENGTH, reverse=True)  # stable: equals keep the tokens' order
    value = 0.5
    if weights:
        n = len(weights)
        ham_side = _chi2q(-2.0 * sum(map(_LOG_P, weights)), 2 * n)
        spam_side = _chi2q(-2.0 * sum(map(_LOG_Q, weights)), 2 * n)
        value = (1.0 + ham_side - spam_side) / 2.0
    return Score(
        score=value,
        evidence=tuple(map(_EVIDENCE, weights)),
        site_decisions=model.site_decisions,
        spam_decisions=model.spam_decisions,
        legitimate_decisions=model.legitimate_decisions,
    )


_STRENGTH, _EVIDENCE, _LOG_P, _LOG_Q = map(operator.itemgetter, range(4))


def decisions_learned(session: Session, site_id: int) -> int:
    """How many decisions the site's own model has learned from (for "learning: N so far")."""
    row = session.execute(
        select(SpamToken.spam, SpamToken.ham).where(
            SpamToken.scope == site_id, SpamToken.token == DOCUMENTS
        )
    ).first()
    return (row[0] + row[1]) if row is not None else 0


def installation_decisions(session: Session) -> int:
    return decisions_learned(session, INSTALLATION)


def rebuild(session: Session, site_id: int) -> dict[str, int]:
    """Forget the site's model and learn again from its decided comments (approved: legitimate,
    spam: spam). The installation's counts lose the site's old lessons and gain the new ones.
    Returns how many comments taught each lesson."""
    from moderation.models import Post

    _record_changes(session, {INSTALLATION: None, site_id: None})

    decided = (
        select(Comment)
        .join(Post, Comment.post_id == Post.id)
        .where(
            Post.site_id == site_id,
            Comment.status.in_([CommentStatus.APPROVED, CommentStatus.SPAM]),
            Comment.official.is_(False),
        )
        .order_by(Comment.id)
    )
    # The installation's counts lose what this site's comments taught before.
    for comment in session.scalars(
        select(Comment)
        .join(Post, Comment.post_id == Post.id)
        .where(Post.site_id == site_id, Comment.learned.is_not(None))
    ):
        _upsert(
            session,
            [
                {"scope": INSTALLATION, "token": token, **_step(Lesson(str(comment.learned)), -1)}
                for token in [DOCUMENTS, *(comment.learned_tokens or [])]
            ],
        )
    session.execute(delete(SpamToken).where(SpamToken.scope == site_id))
    session.execute(
        delete(SpamToken).where(
            SpamToken.scope == INSTALLATION, SpamToken.spam <= 0, SpamToken.ham <= 0
        )
    )
    taught = {Lesson.SPAM.value: 0, Lesson.LEGITIMATE.value: 0}
    for comment in session.scalars(decided.execution_options(yield_per=500)):
        lesson = Lesson.SPAM if comment.status is CommentStatus.SPAM else Lesson.LEGITIMATE
        learned = comment_tokens(comment)
        _change(session, site_id, learned, lesson, +1)
        session.execute(
            update(Comment)
            .where(Comment.id == comment.id)
            .values(learned=lesson.value, learned_tokens=learned)
            .execution_options(synchronize_session=False)
        )
        taught[lesson.value] += 1
    return taught


def _step(lesson: Lesson, step: int) -> dict[str, int]:
    return {"spam": step, "ham": 0} if lesson is Lesson.SPAM else {"spam": 0, "ham": step}


def strongest_tokens(session: Session, site_id: int, limit: int = 10) -> list[tuple[str, float]]:
    """The site's tokens most telling of spam (seen in at least 3 decisions), for reports."""
    spam_docs, ham_docs = 0, 0
    row = session.get(SpamToken, (site_id, DOCUMENTS))
    if row is not None:
        spam_docs, ham_docs = row.spam, row.ham
    rows = session.execute(
        select(SpamToken.token, SpamToken.spam, SpamToken.ham).where(
            SpamToken.scope == site_id,
            SpamToken.token != DOCUMENTS,
            SpamToken.spam + SpamToken.ham >= 3,
        )
    ).all()
    scored = [(t, token_probability(s, h, spam_docs, ham_docs)) for t, s, h in rows]
    scored.sort(key=lambda item: item[1], reverse=True)
    return scored[:limit]


@dataclasses.dataclass(frozen=True)
class FilterReport:
    """How far a site's filter has learned, and how often its moderators overturned it."""

    decisions: int
    filed: int  # filed as spam with no moderator
    rescued: int  # of those, approved or restored by a moderator
    accepted: int  # accepted by every check, then decided by a moderator
    missed: int  # of those, marked spam

    @property
    def overturn_rate(self) -> float | None:
        judged = self.filed + self.accepted
        return (self.rescued + self.missed) / judged if judged else None


def filter_report(session: Session, site_id: int) -> FilterReport:
    """Counted from the comments (grouped, one query), so every process's decisions are in it."""
    from sqlalchemy import func

    from moderation.models import Post

    rows = session.execute(
        select(Comment.verdict, Comment.status, Comment.learned, func.count())
        .join(Post, Comment.post_id == Post.id)
        .where(Post.site_id == site_id, Comment.verdict.in_(["spam", "accept"]))
        .group_by(Comment.verdict, Comment.status, Comment.learned)
    ).all()
    filed = rescued = accepted = missed = 0
    for verdict, status, learned, count in rows:
        status = CommentStatus(status)
        if verdict == "spam":
            filed += count
            if status in (CommentStatus.APPROVED, CommentStatus.PENDING):
                rescued += count
        elif learned is not None:
            accepted += count
            if learned == Lesson.SPAM.value:
                missed += count
    return FilterReport(decisions_learned(session, site_id), filed, rescued, accepted, missed)
