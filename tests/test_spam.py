"""The spam checks: each check's verdict and reason, through the API and the no-JS form."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from moderation import duplicates
from moderation.duplicates import INDEX_KEYS, PER_KEY, resemblance, similarity
from moderation.events import Actor
from moderation.models import Comment, CommentStatus, Event, Post, Site, utcnow
from moderation.sites import update_site
from moderation.spam import (
    PERSONAL_DATA,
    Verdict,
    form_token_age,
    issue_form_token,
    personal_data_kinds,
)
from tests.helpers import (
    POST_KEY,
    SUBMIT,
    TEST_SECRET,
    comment_json,
    good_token,
    json_of,
    login,
    make_app,
    make_moderator,
    make_site,
    make_token,
    stored,
)


def submit(client: FlaskClient, **fields: str) -> Comment:
    """Submit with a form token old enough to pass the time-trap; return the stored comment."""
    data: dict[str, str] = comment_json(form_token=good_token()) | fields
    response = client.post(SUBMIT, json=data)
    assert response.status_code == 202, response.get_data(as_text=True)
    body = json_of(response)
    assert body["status"] == "pending"  # whatever the checks said: bots learn nothing
    return stored(client.application, body["id"])


def checks(comment: Comment) -> list[str]:
    return [s["check"] for s in comment.signals]


def test_a_clean_submission_fires_no_check(session: Session, client: FlaskClient) -> None:
    make_site(session)
    comment = submit(client)
    assert comment.status is CommentStatus.PENDING
    assert comment.signals == []


def test_the_honeypot_files_spam_but_answers_like_any_other(
    session: Session, client: FlaskClient
) -> None:
    make_site(session)
    comment = submit(client, website="http://cheap-pills.example")
    assert comment.status is CommentStatus.SPAM
    assert comment.signals == [
        {
            "check": "honeypot",
            "verdict": "spam",
            "reason": "filled in the hidden field people never see",
        }
    ]

    page = client.get(f"/embed/luac/thread?post={POST_KEY}").get_data(as_text=True)
    assert 'name="website"' in page and 'tabindex="-1"' in page
    form = {"author_name": "Bot", "author_email": "bot@example.com", "body": "Buy now"}
    response = client.post(
        f"/embed/luac/thread?post={POST_KEY}",
        data=form | {"website": "x", "form_token": good_token()},
    )
    assert response.status_code == 303  # the same answer a person gets
    spam = session.scalars(select(Comment).where(Comment.author_name == "Bot")).one()
    assert spam.status is CommentStatus.SPAM


def test_the_time_trap_holds_fast_missing_forged_and_expired_tokens(
    session: Session, client: FlaskClient
) -> None:
    make_site(session)
    now = utcnow()
    fresh = issue_form_token(TEST_SECRET, "luac", now=now)
    expired = issue_form_token(TEST_SECRET, "luac", now=now - dt.timedelta(hours=25))
    forged = fresh[:-4] + ("0000" if not fresh.endswith("0000") else "1111")
    other_site = issue_form_token(TEST_SECRET, "other", now=now - dt.timedelta(minutes=1))
    cases = {
        "": "sent without a form token",
        fresh: "sent less than 3 s after the form was shown",
        expired: "sent with an expired form token",
        forged: "sent with a form token that is not valid",
        other_site: "sent with a form token that is not valid",
    }
    for i, (token, reason) in enumerate(cases.items()):
        comment = submit(client, form_token=token, body=f"Trap case {i} here")
        assert comment.status is CommentStatus.PENDING
        assert comment.signals == [{"check": "time_trap", "verdict": "hold", "reason": reason}]


def test_the_time_trap_can_mark_spam_instead(
    session: Session, engine: Engine, connection: Connection
) -> None:
    make_site(session)
    client = make_app(engine, connection, time_trap_verdict="spam").test_client()
    comment = submit(client, form_token="")
    assert comment.status is CommentStatus.SPAM
    assert comment.signals[0]["verdict"] == "spam"


def test_form_tokens_come_from_the_api_and_the_embed(session: Session, client: FlaskClient) -> None:
    make_site(session)
    response = client.get("/api/v1/sites/luac/form-token")
    assert response.headers["Cache-Control"] == "no-store"
    issued = json_of(response)
    assert issued["min_seconds"] == 3 and issued["expires_in"] == 24 * 3600
    later = utcnow() + dt.timedelta(seconds=5)
    age = form_token_age(TEST_SECRET, "luac", issued["form_token"], now=later)
    assert age is not None and 4 <= age <= 6
    assert (
        form_token_age("another-secret-of-enough-length!!", "luac", issued["form_token"], now=later)
        is None
    )

    page = client.get(f"/embed/luac/thread?post={POST_KEY}").get_data(as_text=True)
    match = re.search(r'name="form_token" value="([^"]+)"', page)
    assert match
    assert form_token_age(TEST_SECRET, "luac", match.group(1), now=later) is not None
    assert client.get("/api/v1/sites/nope/form-token").status_code == 404


def test_more_links_than_the_site_allows_are_held(session: Session, client: FlaskClient) -> None:
    make_site(session)
    two = submit(client, body="See https://a.example/ and www.b.example for more.")
    assert two.signals == []
    three = submit(
        client, body="See https://a.example/ and http://b.example/x and www.c.example please"
    )
    assert three.status is CommentStatus.PENDING
    assert three.signals == [
        {
            "check": "links",
            "verdict": "hold",
            "reason": "3 links; this site allows 2",
            "field": "body",
        }
    ]


def set_terms(session: Session, hold: list[str], spam: list[str]) -> None:
    site = session.scalars(select(Site).where(Site.slug == "luac")).one()
    update_site(
        session, site, {"hold_terms": hold, "spam_terms": spam}, actor=Actor("test"), now=utcnow()
    )
    session.commit()


def test_blocklists_hold_or_mark_spam_on_text_name_email_and_address(
    session: Session, client: FlaskClient
) -> None:
    make_site(session)
    set_terms(session, hold=["Casino", "  ", "127.0.0."], spam=["viagra", "@spam-source.example"])

    spam = submit(client, body="Cheap VIAGRA here")
    assert spam.status is CommentStatus.SPAM
    assert spam.signals[0] == {
        "check": "blocklist",
        "verdict": "spam",
        "reason": "the comment contains one of the site's spam terms",
        "field": "body",
    }
    by_email = submit(client, author_email="someone@spam-source.example", body="Hello there")
    assert by_email.status is CommentStatus.SPAM
    assert by_email.signals[0]["field"] == "author_email"

    held = submit(client, author_name="casino king", body="Nice post")
    assert held.status is CommentStatus.PENDING
    assert held.signals[0]["reason"] == "the name contains one of the site's hold terms"

    # The test client comes from 127.0.0.1: the address term holds an ordinary comment too,
    # and the reason never repeats the address.
    ordinary = submit(client, body="Ordinary words")
    assert ordinary.signals == [
        {
            "check": "blocklist",
            "verdict": "hold",
            "reason": "the client address contains one of the site's hold terms",
        }
    ]


def test_duplicates_are_spam_and_near_duplicates_are_held(
    session: Session, client: FlaskClient
) -> None:
    make_site(session)
    text = "I completely agree with the council about the future of our town centres."
    first = submit(client, body=text)
    assert first.signals == []
    again = submit(client, body=text.upper(), author_email="other@example.com")
    assert again.status is CommentStatus.SPAM
    assert again.signals[0]["reason"] == "the same as a recent comment on this post"

    near = submit(
        client,
        body="I completely agree with the council about the future of our town centres!!! Yes.",
    )
    assert near.status is CommentStatus.PENDING
    assert near.signals[0]["check"] == "duplicate"
    assert near.signals[0]["reason"].startswith("nearly the same (")

    short = submit(client, body="Thank you!")
    assert submit(client, body="Thank you!").signals[0]["verdict"] == "hold"
    assert short.signals == []

    other_post = submit(client, body=text, post="/2024/04/01/another-post/")
    assert other_post.signals == []


def test_long_duplicates_are_found_too(session: Session, client: FlaskClient) -> None:
    # Texts past the length whose words are kept between checks are tokenised each time.
    make_site(session)
    words = [
        "council",
        "town",
        "centre",
        "growth",
        "housing",
        "transport",
        "skills",
        "funding",
        "community",
    ]
    text = " ".join(f"{words[n % len(words)]}{n}" for n in range(200))
    assert len(text) > 1_000
    assert submit(client, body=text).signals == []
    again = submit(client, body=text, author_email="other@example.com")
    assert again.status is CommentStatus.SPAM
    near = submit(client, body=text + " and one more thought", author_email="third@example.com")
    assert near.status is CommentStatus.PENDING
    assert near.signals[0]["reason"].startswith("nearly the same (")


def test_similarity_measures_shared_phrases() -> None:
    assert similarity("a b c d e", "a b c d e") == 1.0
    assert similarity("one two three four", "five six seven eight") == 0.0
    assert 0.4 < similarity("a b c d e f g h", "a b c d e f x y") < 0.7


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Call me on 07700 900123 any time", "phone number"),
        ("My office is +44 20 7946 0958.", "phone number"),
        ("Ring (020) 7946 0958", "phone number"),
        ("My NI number is JG 10 37 21 C", "National Insurance number"),
        ("ni: ab123456c", "National Insurance number"),
        ("write to jane.doe@example.org please", "email address"),
        ("I live at 10 Downing Street, London SW1A 2AA", "postcode"),
        ("postcode m1 1ae", "postcode"),
    ],
)
def test_personal_data_in_the_text_is_found(text: str, kind: str) -> None:
    assert personal_data_kinds(text) == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "The council spent £1,250,000 in 2023, up 12% on 2022.",
        "See paragraph 3.4 of the report (pages 12 to 19).",
        "Version 2.0.1 was released on 2024-03-28.",
        "The A1 and M25 were busy.",
    ],
)
def test_ordinary_text_is_not_personal_data(text: str) -> None:
    assert personal_data_kinds(text) == []


def test_personal_data_holds_the_comment_with_the_reason(
    session: Session, client: FlaskClient
) -> None:
    make_site(session)
    comment = submit(client, body="Please call me on 07700 900123 about SW1A 2AA")
    assert comment.status is CommentStatus.PENDING
    assert comment.signals == [
        {
            "check": "personal_data",
            "verdict": "hold",
            "reason": f"{PERSONAL_DATA} (phone number, postcode)",
            "field": "body",
        }
    ]
    assert comment.signals[0]["reason"].startswith("contains personal data")


def test_disposable_email_domains_are_held(session: Session, client: FlaskClient) -> None:
    make_site(session)
    comment = submit(client, author_email="throwaway@mailinator.com")
    assert comment.signals == [
        {
            "check": "disposable_email",
            "verdict": "hold",
            "reason": "uses a disposable email address",
            "field": "author_email",
        }
    ]
    assert submit(client, author_email="someone@gmail.com", body="Another").signals == []


def test_every_reason_that_fired_is_kept_in_order(session: Session, client: FlaskClient) -> None:
    make_site(session)
    comment = submit(
        client,
        form_token="",
        website="x",
        author_email="a@mailinator.com",
        body="https://a.example https://b.example https://c.example call 07700 900123",
    )
    assert comment.status is CommentStatus.SPAM
    assert checks(comment) == [
        "honeypot",
        "time_trap",
        "links",
        "personal_data",
        "disposable_email",
    ]
    assert [s["verdict"] for s in comment.signals] == ["spam", "hold", "hold", "hold", "hold"]
    # Webhook consumers see the reasons too, but never an address.
    event = session.scalars(select(Event).where(Event.comment_id == comment.id)).one()
    assert event.payload["data"]["signals"] == comment.signals
    assert "mailinator" not in str(event.payload)


def test_moderators_see_why_and_filter_by_signal(session: Session, client: FlaskClient) -> None:
    make_site(session)
    moderator = make_moderator(session)
    token = make_token(session, moderator)
    held = submit(client, body="Links https://a.example https://b.example https://c.example")
    clean = submit(client, body="Nothing to see")
    personal = submit(client, body="Call 07700 900123")

    headers = {"Authorization": f"Bearer {token}"}
    listed = json_of(client.get("/api/v1/moderation/comments?signal=links", headers=headers))
    assert [c["id"] for c in listed["comments"]] == [held.public_id]
    assert listed["comments"][0]["signals"][0]["check"] == "links"
    unfiltered = json_of(client.get("/api/v1/moderation/comments", headers=headers))
    assert {c["id"] for c in unfiltered["comments"]} == {
        held.public_id,
        clean.public_id,
        personal.public_id,
    }

    login(client)
    page = client.get("/moderate/?signal=personal_data").get_data(as_text=True)
    assert "Why it was held" in page
    assert "contains personal data (phone number)" in page
    assert "Nothing to see" not in page and "Links" not in page
    assert '<option value="personal_data" selected>' in page


def test_blocklists_are_set_from_the_admin_api(session: Session, client: FlaskClient) -> None:
    make_site(session)
    token = make_token(session, make_moderator(session))
    response = client.patch(
        "/api/v1/moderation/sites/luac",
        json={"hold_terms": ["casino", " "], "spam_terms": ["viagra"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    session.expire_all()
    site = session.scalars(select(Site).where(Site.slug == "luac")).one()
    assert (site.hold_terms, site.spam_terms) == (["casino"], ["viagra"])
    bad = client.patch(
        "/api/v1/moderation/sites/luac",
        json={"spam_terms": "viagra"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert bad.status_code == 422
    assert "spam_terms" in json_of(bad)["error"]["fields"]


def test_the_cli_sets_a_sites_blocklists(tmp_path: Path) -> None:
    from tests.helpers import run_command

    assert run_command(tmp_path, "db", "upgrade").returncode == 0
    assert (
        run_command(
            tmp_path, "site", "add", "luac", "--name", "L", "--origin", "https://a.example"
        ).returncode
        == 0
    )
    done = run_command(
        tmp_path, "site", "set-blocklist", "luac", "--hold", "casino", "--hold", "203.0.113.",
        "--spam", "viagra",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 hold terms, 1 spam terms" in done.stdout
    missing = run_command(tmp_path, "site", "set-blocklist", "nope", "--hold", "x")
    assert missing.returncode != 0


def test_verdicts_rank_weakest_first() -> None:
    assert [v.rank for v in Verdict] == [0, 1, 2, 3]


def test_an_unknown_signal_filter_is_refused(session: Session, client: FlaskClient) -> None:
    token = make_token(session, make_moderator(session))
    response = client.get(
        "/api/v1/moderation/comments?signal=nope", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400
    assert "signal" in json_of(response)["error"]["fields"]


def test_the_duplicate_check_reads_a_bounded_number_of_sketches(session: Session) -> None:
    """However many recent comments share the text's phrases, the check compares a bounded
    number of sketches, found by index, and still finds the copy."""
    site = make_site(session)
    post = Post(site=site, key=POST_KEY, title="P", url="https://example.org/p/")
    session.add(post)
    session.flush()
    now = utcnow()
    for n in range(3 * INDEX_KEYS * PER_KEY):
        comment = Comment(
            post_id=post.id,
            author_name="A",
            author_email=f"a{n}@example.com",
            body_text=f"Thank you for this post, it was great {n}",
            body_html="<p>x</p>",
            submitted_at=now - dt.timedelta(minutes=n),
        )
        session.add(comment)
        duplicates.record(session, comment)
    text = "Thank you for this post, it was great 5"
    found = duplicates.recent(
        session, post.id, duplicates.sketch(text), since=now - dt.timedelta(days=7)
    )
    assert len(found) <= INDEX_KEYS * PER_KEY
    assert duplicates.sketch(text).fingerprint in {fingerprint for fingerprint, _ in found}
    older = duplicates.recent(
        session, post.id, duplicates.sketch(text), since=now + dt.timedelta(minutes=1)
    )
    assert not older


def test_sketches_give_the_resemblance_of_short_texts_exactly() -> None:
    pairs = [
        ("a b c d e", "a b c d e"),
        ("one two three four", "five six seven eight"),
        ("a b c d e f g h", "a b c d e f x y"),
        ("I agree with the council", "I agree with the council, mostly"),
    ]
    for a, b in pairs:
        assert resemblance(duplicates.sketch(a), duplicates.sketch(b)) == similarity(a, b)
