"""The learned check's spam score in the queue (issue 17): shown on each card, and an order by it
in the queue and the moderation API, keyset-paginated, scoreless comments last."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from moderation import queue as queues
from moderation.models import CommentStatus, Moderator, Role, Site
from tests.helpers import add_comment, json_of, login, make_moderator, make_site, make_token

S = CommentStatus
# Scores in the order the comments arrive; two ties, two without a score.
SCORES = [0.2, 0.95, None, 0.6, 0.95, 0.999, None, 0.01]


def scored(session: Session, site: Site, status: CommentStatus = S.SPAM) -> list[str]:
    start = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    ids = []
    for i, score in enumerate(SCORES):
        comment = add_comment(
            session,
            site,
            start + dt.timedelta(minutes=i),
            status=status,
            spam_score=score,
            author_name=f"Author {i}",
        )
        ids.append(comment.public_id)
    session.commit()
    return ids


def expected(ids: list[str], highest: bool) -> list[str]:
    with_score = [(s, n) for n, s in enumerate(SCORES) if s is not None]
    with_score.sort(key=lambda item: (-item[0], -item[1]) if highest else item)
    without = [n for n, s in enumerate(SCORES) if s is None]
    return [ids[n] for _, n in with_score] + [ids[n] for n in without]


def walk(client: FlaskClient, token: str, order: str, status: str = "spam") -> list[str]:
    """Every page of the API's list, two comments a page."""
    seen: list[str] = []
    cursor = ""
    for _ in range(20):
        query = {"status": status, "order": order, "limit": "2", "cursor": cursor}
        response = client.get(
            "/api/v1/moderation/comments",
            query_string={k: v for k, v in query.items() if v},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        body = json_of(response)
        seen += [c["id"] for c in body["comments"]]
        cursor = body.get("next_cursor") or ""
        if not cursor:
            return seen
    raise AssertionError("the pages never ended")


@pytest.fixture
def admin(session: Session) -> Moderator:
    return make_moderator(session)


@pytest.mark.parametrize("status", ["spam", "pending"])
def test_the_api_pages_through_by_score_either_way_scoreless_last(
    client: FlaskClient, session: Session, admin: Moderator, status: str
) -> None:
    ids = scored(session, make_site(session), S(status))
    token = make_token(session, admin)
    assert walk(client, token, "highest_score", status) == expected(ids, highest=True)
    assert walk(client, token, "lowest_score", status) == expected(ids, highest=False)
    assert walk(client, token, "oldest", status) == ids


def test_the_order_by_score_keeps_to_the_moderators_sites(
    client: FlaskClient, session: Session
) -> None:
    ours = scored(session, make_site(session))
    scored(session, make_site(session, "other", "https://other.blog.gov.uk"))
    moderator = make_moderator(session, "mod", role=Role.MODERATOR, sites=("luac",))
    token = make_token(session, moderator)
    assert walk(client, token, "highest_score") == expected(ours, highest=True)


def test_a_cursor_continues_only_its_own_order_and_a_hostile_one_is_refused(
    client: FlaskClient, session: Session, admin: Moderator
) -> None:
    scored(session, make_site(session))
    auth = {"Authorization": f"Bearer {make_token(session, admin)}"}
    url = "/api/v1/moderation/comments?status=spam&limit=2"
    by_id = json_of(client.get(url, headers=auth))["next_cursor"]
    by_score = json_of(client.get(url + "&order=highest_score", headers=auth))["next_cursor"]
    assert client.get(f"{url}&order=highest_score&cursor={by_id}", headers=auth).status_code == 400
    assert client.get(f"{url}&cursor={by_score}", headers=auth).status_code == 400
    for hostile in ("A" * 10_000, "czox" * 2_500, by_score + "=" * 5_000):
        began = time.process_time()
        response = client.get(
            "/api/v1/moderation/comments",
            query_string={"status": "spam", "order": "lowest_score", "cursor": hostile},
            headers=auth,
        )
        assert time.process_time() - began < 0.05
        assert response.status_code == 400
        assert hostile[:50] not in response.get_data(as_text=True)
    response = client.get(url + "&order=score", headers=auth)
    assert response.status_code == 400
    assert "highest_score" in json_of(response)["error"]["fields"]["order"]


def test_score_cursors_round_trip_exactly() -> None:
    for score in (0.0, 1.0, 1e-05, 0.12345678901234568, 5.2e-300, None):
        cursor = queues.encode_score_cursor(score, 123)
        assert queues.decode_score_cursor(cursor) == (score, 123)


def test_the_spam_folder_shows_each_score_in_words_and_sorts_by_it(
    client: FlaskClient, session: Session, admin: Moderator
) -> None:
    ids = scored(session, make_site(session))
    login(client)
    page = client.get("/moderate/?status=spam&order=lowest_score&limit=3").get_data(as_text=True)
    assert "0.01 of 1: unlikely to be spam" in page
    assert "0.20 of 1: unlikely to be spam" in page
    assert "0.60 of 1: likely spam" in page
    assert '<option value="lowest_score" selected>Least likely spam first</option>' in page
    order = [page.index(f'id="queue-{i}"') for i in expected(ids, highest=False)[:3]]
    assert order == sorted(order)
    # The next page and the status tabs keep the order.
    assert "order=lowest_score&amp;cursor=" in page
    assert "status=pending&amp;order=lowest_score" in page
    top = client.get("/moderate/?status=spam&order=highest_score&limit=1").get_data(as_text=True)
    assert "1.00 of 1: at or above this site's threshold for filing as spam (0.90)" in top


def test_the_order_by_score_reads_the_index_in_order(session: Session, admin: Moderator) -> None:
    """Each page's query walks (status, spam_score) instead of sorting the whole folder."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL's plan depends on its statistics")
    scored(session, make_site(session))
    wanted = queues.QueueFilter(status=S.SPAM, order=queues.QueueOrder.HIGHEST_SCORE)
    statements: list[tuple[str, Any]] = []

    def keep(conn: object, cursor: object, statement: str, parameters: Any, *args: object) -> None:
        if "spam_score" in statement and "ORDER BY" in statement:
            statements.append((statement, parameters))

    engine = connection.engine
    event.listen(engine, "before_cursor_execute", keep)
    try:
        page = queues.list_queue(session, admin, wanted, limit=3)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert len(page.comments) == 3 and statements
    statement, parameters = statements[0]
    rows = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
    plan = " ".join(str(row[-1]) for row in rows)
    assert "ix_comments_status_spam_score" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
