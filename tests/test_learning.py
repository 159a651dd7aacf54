"""The learned spam check: what decisions teach and unlearn, cold start, reasons, concurrency."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from bench.spam_corpus import address_of, load
from moderation import learning, transfer
from moderation.actions import edit_comment, moderate_comment, undo
from moderation.comments import submit_comment
from moderation.db import make_engine
from moderation.events import Actor
from moderation.models import (
    Comment,
    CommentStatus,
    Moderator,
    Post,
    Site,
    SpamModelChange,
    SpamModelVersion,
    SpamToken,
    utcnow,
)
from moderation.personal_data import erase_personal_data
from moderation.spam import Candidate, ClassifierCheck, Evidence, Verdict
from moderation.validation import CommentSubmission
from tests.helpers import login, make_moderator, make_site, remove_site

NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)


def add(session: Session, body: str, *, name: str = "Ada Lovelace", email: str = "") -> Comment:
    submission = CommentSubmission(
        post="/2024/03/28/from-industrial-decline/",
        post_title="From industrial decline to growth",
        author_name=name,
        author_email=email or address_of(name),
        body=body,
    )
    return submit_comment(session, "luac", submission, now=NOW)


def decide(session: Session, moderator: Moderator, comment: Comment, action: str) -> Comment:
    actor = Actor(moderator.login, moderator.id)
    return moderate_comment(session, moderator, comment.public_id, action, actor=actor, now=NOW)


def model(session: Session) -> dict[tuple[int, str], tuple[int, int]]:
    rows = session.scalars(select(SpamToken)).all()
    return {(r.scope, r.token): (r.spam, r.ham) for r in rows}


def site_id(session: Session) -> int:
    return session.scalars(select(Site.id).where(Site.slug == "luac")).one()


def test_tokens_carry_words_and_the_structure_spam_uses() -> None:
    tokens = learning.tokens(
        "CHECK OUT my channel!!! http://www.cheap-views.example.com/?ref=7 or call 0161 496 0000 "
        'or <a href="https://shop.example.net/x">best prices</a> for $5',
        author_name="Cheap Views 4U",
        title="From industrial decline to growth",
    )
    for expected in (
        "check",
        "check out",
        "channel",
        "link:cheap-views.example.com",
        "link:example.com",
        "link:query",
        "link text:best prices",
        "links:3",
        "shape:phone",
        "shape:money",
        "repeat:!",
        "title:no words in common",
        "name:has digits",
        "name:cheap",
    ):
        assert expected in tokens
    long = learning.tokens(" ".join(f"word{n}" for n in range(5000)))
    assert len(long) == learning.MAX_TOKENS
    squashed = learning.tokens("plzzzzzz subscribeeeee")
    assert "plz" in squashed and "subscribe" in squashed


# Pieces links are made of, and of the places where the fast scan could part from the plain
# expression: runs of domain characters, endings and near-endings, marked links, word characters
# outside a-z (which end a run but not a word), the letters IGNORECASE folds into a-z.
LINK_PIECES = [
    "a", "B", "x", "-", ".", ".com", ".co", ".uk", ".Com", ".comm", "www.", "http://",
    "https://", " ", "/", "?", "=", "é", "_", "\u017f", "\u212a", "\u0130", "\n", "'", '"', "<",
    ">", "example", "1", "a.b", "-x.com", "x" * 70, ".org",
]  # fmt: skip
ALTERNATION = re.compile(learning._MARKED + "|" + learning._BARE, re.IGNORECASE)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(LINK_PIECES), max_size=60).map("".join))
def test_links_are_what_the_plain_alternation_finds(text: str) -> None:
    """links() finds bare domains only in runs holding an ending: the same links, in order, as
    the one expression trying every word (the first ten of them by default)."""
    found = ALTERNATION.findall(text)
    assert learning.links(text, most=len(found) + 1) == found
    assert learning.links(text) == found[: learning.MAX_LINKS]


def test_links_on_real_comments_and_long_runs() -> None:
    texts = [row.body for rows in load().values() for row in rows]
    texts += ["a.com" * 500, "a-" * 3000 + ".com", ("x" * 300 + ".com ") * 20, "x-y.uk " * 900]
    for text in texts:
        assert learning.links(text, most=10**6) == ALTERNATION.findall(text)


def test_approve_and_spam_teach_restore_and_undo_unlearn(session: Session) -> None:
    make_site(session)
    editor = make_moderator(session)
    ham = add(session, "Thank you for the report on town centre funding.")
    spam = add(session, "Subscribe to my channel for free views", name="Views Seller")
    decide(session, editor, ham, "approve")
    decide(session, editor, spam, "spam")
    site = site_id(session)
    counts = model(session)
    assert counts[(site, learning.DOCUMENTS)] == (1, 1)
    assert counts[(learning.INSTALLATION, learning.DOCUMENTS)] == (1, 1)
    assert counts[(site, "funding")] == (0, 1)
    assert counts[(site, "subscribe")] == (1, 0)
    assert spam.learned == "spam" and ham.learned == "legitimate"

    decide(session, editor, spam, "restore")  # back to pending: unlearned
    counts = model(session)
    assert (site, "subscribe") not in counts
    assert counts[(site, learning.DOCUMENTS)] == (0, 1)

    undo(session, editor, ham.public_id, actor=Actor(editor.login, editor.id), now=NOW)
    assert model(session) == {}  # nothing any decision taught remains


def test_reject_teaches_nothing_and_an_edit_teaches_what_was_submitted(session: Session) -> None:
    make_site(session)
    editor = make_moderator(session)
    rude = add(session, "This is an off-topic rant about parking")
    decide(session, editor, rude, "reject")
    assert model(session) == {}
    edited = add(session, "Great post, see my site for casino bonuses")
    actor = Actor(editor.login, editor.id)
    edit_comment(session, editor, edited.public_id, "Great post", actor=actor, now=NOW)
    decide(session, editor, edited, "approve")
    counts = model(session)
    assert counts[(site_id(session), "casino")] == (0, 1)


def test_erasure_leaves_nothing_learned_only_from_the_address(session: Session) -> None:
    make_site(session)
    editor = make_moderator(session)
    kept = add(session, "The council report on housing was clear", name="Grace Hopper")
    decide(session, editor, kept, "approve")
    before = model(session)
    gone = [
        add(session, "Zanzibar crypto giveaway, message me", name="Erin Erased"),
        add(session, "Housing report: zanzibar is my favourite", name="Erin Erased"),
    ]
    decide(session, editor, gone[0], "spam")
    decide(session, editor, gone[1], "approve")
    assert model(session) != before
    erase_personal_data(
        session, address_of("Erin Erased"), actor=Actor(editor.login, editor.id), now=NOW
    )
    after = model(session)
    assert after == before  # exactly what the other address taught, no "zanzibar", no name
    assert not any("zanzibar" in token or "erin" in token for _, token in after)
    logged = [t for tokens in session.scalars(select(SpamModelChange.tokens)) for t in tokens or []]
    assert not any("zanzibar" in token or "erin" in token for token in logged)
    assert learning.score(session, site_id(session), ["zanzibar"]).evidence == ()


def train_on_corpus(session: Session, editor: Moderator, rows: int) -> None:
    """Teach the site real labelled comments (the YouTube Spam Collection's)."""
    videos = load()
    taught = 0
    for comments in videos.values():
        for row in comments[:rows]:
            comment = add(session, row.body, name=row.author[:100] or "someone")
            if comment.status is CommentStatus.PENDING:
                decide(session, editor, comment, "spam" if row.spam else "approve")
            taught += 1


def candidate(session: Session, body: str, name: str, email: str) -> Candidate:
    site = session.scalars(select(Site).where(Site.slug == "luac")).one()
    post = session.scalars(select(Post).where(Post.site_id == site.id)).one()
    return Candidate(site, post, name, email, body, Evidence(), NOW)


SPAMMY = "Hey guys check out my channel and subscribe please, I make music videos"


def test_a_new_site_gets_holds_only_until_it_has_learned_enough(session: Session) -> None:
    make_site(session)
    editor = make_moderator(session)
    train_on_corpus(session, editor, 4)  # 20 decisions: too few to file anything
    signal = ClassifierCheck()(session, candidate(session, SPAMMY, "Kim", "kim@example.com"))
    assert signal is not None and signal.verdict is Verdict.HOLD
    assert "likely spam" in signal.reason and "decisions so far" in signal.reason


def test_a_confident_verdict_names_its_tokens_and_no_personal_data(session: Session) -> None:
    make_site(session)
    editor = make_moderator(session)
    train_on_corpus(session, editor, 90)
    assert learning.decisions_learned(session, site_id(session)) >= 400
    name, email = "Subscribe Channel", "subscribe.channel@example.com"
    signal = ClassifierCheck()(session, candidate(session, SPAMMY, name, email))
    assert signal is not None and signal.verdict is Verdict.SPAM, signal
    assert signal.reason.startswith("spam (")
    assert "often in spam here: '" in signal.reason
    assert "subscribe" not in signal.reason.casefold()  # a word of the author's name
    assert email not in signal.reason and "example.com" not in signal.reason
    legitimate = ClassifierCheck()(
        session, candidate(session, "I love this song, it reminds me of 2010", "Al", "a@b.org")
    )
    assert legitimate is not None and legitimate.verdict is Verdict.ACCEPT


def test_the_model_travels_in_export_and_import(session: Session, engine: Engine) -> None:
    make_site(session)
    editor = make_moderator(session)
    comment = add(session, "Subscribe to my channel for free views", name="Views Seller")
    decide(session, editor, comment, "spam")
    records: dict[str, list[dict[str, object]]] = {}
    for section, record in transfer.export_records(session, now=NOW):
        records.setdefault(section, []).append(record)
    assert {"site": "luac", "token": "subscribe", "spam": 1, "ham": 0} in records["spam_model"]
    exported = next(c for c in records["comments"] if c["id"] == comment.public_id)
    assert exported["learned"] == "spam" and "subscribe" in exported["learned_tokens"]  # type: ignore[operator]

    session.execute(delete(SpamToken))
    session.execute(delete(Comment))
    session.execute(delete(Post))
    session.execute(delete(Moderator).where(Moderator.login != "nobody"))
    session.execute(delete(Site))
    session.flush()
    document = {"meta": records["meta"][0], **{k: v for k, v in records.items() if k != "meta"}}
    added = transfer.import_document(session, document)
    assert added["spam_model"] == len(records["spam_model"])
    site = site_id(session)
    assert model(session)[(site, "subscribe")] == (1, 0)


TEACHER = textwrap.dedent(
    """
    import sys
    from sqlalchemy import select
    from sqlalchemy.orm import Session
    from moderation.actions import moderate_comment
    from moderation.db import make_engine
    from moderation.events import Actor
    from moderation.models import Comment, Moderator, utcnow

    engine = make_engine(sys.argv[1])
    for public_id in sys.argv[3:]:
        with Session(engine) as session:
            login = sys.argv[2]
            moderator = session.scalars(select(Moderator).where(Moderator.login == login)).one()
            moderate_comment(session, moderator, public_id, "approve",
                             actor=Actor(moderator.login, moderator.id), now=utcnow())
            session.commit()
    """
)


@pytest.fixture
def committed(engine: Engine) -> Iterator[sessionmaker[Session]]:
    factory = sessionmaker(engine, expire_on_commit=False)
    yield factory
    with factory() as session:
        session.execute(delete(SpamToken))
        session.execute(delete(SpamModelVersion))
        session.execute(delete(SpamModelChange))
        remove_site(session, "learners")
        session.execute(delete(Moderator).where(Moderator.login == "teacher"))
        session.commit()


@pytest.mark.postgres_only
@pytest.mark.subprocess
@pytest.mark.concurrency
def test_two_processes_learn_into_one_postgresql_model(
    engine: Engine, committed: sessionmaker[Session]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("real concurrency on PostgreSQL")
    from moderation.sites import create_site

    per_process = 20
    with committed() as session:
        create_site(session, slug="learners", name="Learners", origins=["https://l.example"])
        make_moderator(session, "teacher")
        ids: list[str] = []
        for n in range(2 * per_process):
            # Every comment shares most words, so the two processes upsert the same rows at once.
            submission = CommentSubmission(
                post="/p/",
                post_url="https://l.example/p/",
                author_name="Reader",
                author_email="reader@example.com",
                body=f"the same shared words about housing and transport, comment {n}",
            )
            ids.append(submit_comment(session, "learners", submission, now=utcnow()).public_id)
        session.commit()
    url = engine.url.render_as_string(hide_password=False)
    teachers = [
        subprocess.Popen(
            [sys.executable, "-c", TEACHER, url, "teacher", *ids[n::2]],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for teacher in teachers:
        _, errors = teacher.communicate(timeout=120)
        assert teacher.returncode == 0, errors
    with committed() as session:
        site = session.scalars(select(Site.id).where(Site.slug == "learners")).one()
        counts = model(session)
        assert counts[(site, learning.DOCUMENTS)] == (0, 2 * per_process)
        assert counts[(site, "housing")] == (0, 2 * per_process)
        assert counts[(learning.INSTALLATION, "housing")] == (0, 2 * per_process)
        assert counts[(site, "comment 7")] == (0, 1)


def _learners(session: Session, bodies: list[str]) -> list[Comment]:
    from moderation.sites import create_site

    create_site(session, slug="learners", name="Learners", origins=["https://l.example"])
    make_moderator(session, "teacher")
    return [
        submit_comment(
            session,
            "learners",
            CommentSubmission(
                post="/p/",
                post_url="https://l.example/p/",
                author_name="Reader",
                author_email="reader@example.com",
                body=body,
            ),
            now=utcnow(),
        )
        for body in bodies
    ]


def _housing_evidence(session: Session) -> tuple[int, list[str]]:
    site = session.scalars(select(Site.id).where(Site.slug == "learners")).one()
    result = learning.score(session, site, learning.tokens("housing and transport"))
    return result.legitimate_decisions, [e.token for e in result.evidence]


@pytest.mark.subprocess
def test_a_process_scores_with_what_another_process_has_just_taught(
    engine: Engine, committed: sessionmaker[Session]
) -> None:
    with committed() as session:
        spam, ham = _learners(
            session, ["cheap followers, visit my shop now", "housing and transport matter"]
        )
        teacher = session.scalars(select(Moderator).where(Moderator.login == "teacher")).one()
        moderate_comment(
            session, teacher, spam.public_id, "spam", actor=Actor("teacher", teacher.id), now=NOW
        )
        session.commit()
    with committed() as session:
        # This process reads the counts (and keeps them while the model's stamp is unchanged).
        assert _housing_evidence(session) == (0, [])
        assert _housing_evidence(session) == (0, [])
    url = engine.url.render_as_string(hide_password=False)
    other = subprocess.run(
        [sys.executable, "-c", TEACHER, url, "teacher", ham.public_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode == 0, other.stderr
    with committed() as session:
        decisions, evidence = _housing_evidence(session)
        assert decisions == 1 and "housing" in evidence


def test_a_rolled_back_lesson_never_reaches_a_later_score(
    committed: sessionmaker[Session],
) -> None:
    with committed() as session:
        spam, ham = _learners(
            session, ["cheap followers, visit my shop now", "housing and transport matter"]
        )
        teacher = session.scalars(select(Moderator).where(Moderator.login == "teacher")).one()
        moderate_comment(
            session, teacher, spam.public_id, "spam", actor=Actor("teacher", teacher.id), now=NOW
        )
        session.commit()
        moderate_comment(
            session, teacher, ham.public_id, "approve", actor=Actor("teacher", teacher.id), now=NOW
        )
        assert _housing_evidence(session)[0] == 1  # seen inside the transaction that taught it
        session.rollback()
    with committed() as session:
        assert _housing_evidence(session) == (0, [])


@pytest.mark.parametrize(
    ("kept_changes", "kept_tokens"),
    [(learning.KEPT_CHANGES, learning.KEPT_TOKENS), (1, learning.KEPT_TOKENS), (1000, 3)],
)
def test_kept_counts_follow_learning_and_unlearning_elsewhere(
    committed: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    kept_changes: int,
    kept_tokens: int,
) -> None:
    # With one change kept, a reader two changes behind cannot catch up and reads it all again;
    # with a scope too large to keep, each score reads its tokens' counts.
    monkeypatch.setattr(learning, "KEPT_CHANGES", kept_changes)
    monkeypatch.setattr(learning, "KEPT_TOKENS", kept_tokens)
    with committed() as session:
        spam, ham, more = _learners(
            session,
            [
                "cheap followers, visit my shop now",
                "housing and transport matter",
                "transport for the town",
            ],
        )
        teacher = session.scalars(select(Moderator).where(Moderator.login == "teacher")).one()
        actor = Actor("teacher", teacher.id)
        moderate_comment(session, teacher, spam.public_id, "spam", actor=actor, now=NOW)
        moderate_comment(session, teacher, ham.public_id, "approve", actor=actor, now=NOW)
        session.commit()
    with committed() as reader:
        decisions, evidence = _housing_evidence(reader)
        assert decisions == 1 and {"housing", "transport"} <= set(evidence)
    with committed() as session:  # a decision and an unlearning, committed elsewhere
        teacher = session.scalars(select(Moderator).where(Moderator.login == "teacher")).one()
        actor = Actor("teacher", teacher.id)
        moderate_comment(session, teacher, more.public_id, "approve", actor=actor, now=NOW)
        undo(session, teacher, ham.public_id, actor=actor, now=NOW)
        session.commit()
    with committed() as reader:
        decisions, evidence = _housing_evidence(reader)
        assert decisions == 1 and "transport" in evidence and "housing" not in evidence


def test_spam_train_rebuilds_a_site_model_from_its_decided_comments(tmp_path: Path) -> None:
    from tests.helpers import run_command

    assert run_command(tmp_path, "db", "upgrade").returncode == 0
    added = run_command(
        tmp_path, "site", "add", "luac", "--name", "L", "--origin", "https://l.example"
    )
    assert added.returncode == 0, added.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with Session(engine) as session:
        site = session.scalars(select(Site)).one()
        post = Post(site=site, key="/p/", title="Housing", url="https://l.example/p/")
        session.add(post)
        for body, status in (
            ("Subscribe to my channel for free views", CommentStatus.SPAM),
            ("The housing figures are out of date", CommentStatus.APPROVED),
            ("Off topic", CommentStatus.REJECTED),
        ):
            session.add(
                Comment(post=post, author_name="A", author_email="a@example.com", body_text=body,
                        body_html=body, status=status)
            )  # fmt: skip
        session.commit()
    trained = run_command(tmp_path, "spam", "train", "--site", "luac")
    assert trained.returncode == 0, trained.stderr
    assert "luac: learned from 1 spam and 1 legitimate comments." in trained.stdout
    with Session(engine) as session:
        counts = model(session)
        assert counts[(site_id(session), learning.DOCUMENTS)] == (1, 1)
        assert counts[(site_id(session), "subscribe")] == (1, 0)
        assert counts[(learning.INSTALLATION, "housing")] == (0, 1)
    again = run_command(tmp_path, "spam", "train")  # every site, rebuilt: the same counts
    assert again.returncode == 0, again.stderr
    with Session(engine) as session:
        assert model(session) == counts
    engine.dispose()
    unknown = run_command(tmp_path, "spam", "train", "--site", "nope")
    assert unknown.returncode != 0


def test_the_site_page_says_how_far_the_filter_has_learned_and_its_overturn_rate(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    editor = make_moderator(session)
    filed = add(session, "Subscribe to my channel for free views", name="Views Seller")
    session.execute(
        update(Comment)
        .where(Comment.id == filed.id)
        .values(status=CommentStatus.SPAM, verdict="spam")
    )
    accepted = add(session, "A careful reply about the housing figures")
    session.execute(update(Comment).where(Comment.id == accepted.id).values(verdict="accept"))
    decide(session, editor, accepted, "spam")  # the filter missed it: overturned
    session.commit()
    login(client)
    page = client.get("/moderate/admin/sites/luac").get_data(as_text=True)
    assert "Learning: 1 decisions so far" in page
    assert "Moderators overturned 50.0% of its verdicts" in page
    assert "0 of 1 filed as spam were rescued, 1 of 1 accepted were marked spam" in page
