"""The monthly report per site (issue 19, item 9): counts from the audit log and the comments,
months in UK time, scoped to the moderator's sites, as a page and a CSV with no personal data."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation import actions
from moderation.errors import Malformed, NotFound
from moderation.events import Actor
from moderation.models import AuditEvent, Comment, CommentStatus, Moderator, Role
from moderation.monthly_report import (
    Month,
    describe_duration,
    monthly_report,
    percentile,
    report_csv,
)
from tests.helpers import add_comment, login, make_moderator, make_site

S = CommentStatus
NOVEMBER = Month(2026, 11)
AFTER_NOVEMBER = dt.datetime(2026, 12, 10, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def at(day: int, hour: int = 10, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=dt.UTC)


def decide(
    session: Session,
    moderator: Moderator,
    comment: Comment,
    action: str,
    when: dt.datetime,
    reason: str | None = None,
) -> None:
    actor = Actor(moderator.login, moderator.id, "ui")
    actions.moderate_comment(
        session, moderator, comment.public_id, action, actor=actor, now=when, reason=reason
    )


@pytest.fixture
def admin(session: Session) -> Moderator:
    return make_moderator(session, "editor")


def test_a_month_counts_decisions_less_undos_reasons_spam_and_waits(
    session: Session, admin: Moderator
) -> None:
    site = make_site(session)
    other = make_site(session, "other", "https://other.blog.gov.uk")
    site.reject_reasons = ["Off topic", "Rude"]
    # Waits of 1, 2, 3, 4, 5 and 30 hours; the 30-hour one arrived in October.
    for hours, (action, reason) in enumerate(
        [
            ("approve", None),
            ("reject", "Off topic"),
            ("reject", "Off topic"),
            ("reject", None),
            ("spam", None),
        ],
        start=1,
    ):
        comment = add_comment(session, site, at(hours + 1))
        decide(session, admin, comment, action, at(hours + 1) + hours * HOUR, reason)
    late = add_comment(session, site, at(31, 6, month=10))
    decide(session, admin, late, "approve", at(1, 12))
    # Approved, undone, then rejected: one rejection, timed to the rejection (6 hours).
    changed = add_comment(session, site, at(10))
    decide(session, admin, changed, "approve", at(10, 11))
    actor = Actor(admin.login, admin.id, "ui")
    undo_at = at(10, 11) + dt.timedelta(seconds=5)
    actions.undo(session, admin, changed.public_id, actor=actor, now=undo_at)
    decide(session, admin, changed, "reject", at(10, 16), "Rude")
    # Filed by the filter: received and spam, never timed.
    add_comment(session, site, at(12), status=S.SPAM, verdict="spam")
    # Confirmed and approved automatically (trusted address): published, not timed.
    trusted = add_comment(session, site, at(13), status=S.UNCONFIRMED)
    actions.confirm_address(session, trusted, trusted=True, now=at(13, 11))
    # Not received: the blog's reply, an import; another site; December.
    first = session.scalars(select(Comment).where(Comment.status == S.APPROVED)).first()
    assert first is not None
    actions.reply_as_blog(session, admin, first.public_id, "Thanks", actor=actor, now=at(14))
    add_comment(session, site, at(15), status=S.APPROVED, import_ref="wordpress:1")
    decide(session, admin, add_comment(session, other, at(16)), "approve", at(16, 11))
    decide(session, admin, add_comment(session, site, at(1, month=12)), "approve", at(1, 11, 12))

    report = monthly_report(session, admin, "luac", NOVEMBER, now=AFTER_NOVEMBER)

    assert not report.partial and report.zone == "Europe/London"
    assert report.received == 5 + 1 + 1 + 1  # the late one came in October
    assert (report.published, report.published_automatically) == (3, 1)
    assert report.rejected == 4
    assert report.rejected_by_reason == (("Off topic", 2), ("No reason given", 1), ("Rude", 1))
    assert (report.filed_as_spam, report.marked_spam, report.spam) == (1, 1, 2)
    # Waits in hours: 1, 2, 3, 4, 5, 6 and 30.
    assert report.decisions_timed == 7
    assert report.median_seconds == 4 * 3600
    assert report.p95_seconds == 30 * 3600
    assert (report.reports, report.bans) == (0, 0)


def test_months_run_midnight_to_midnight_in_uk_time(session: Session, admin: Moderator) -> None:
    site = make_site(session)
    # 23:30 UTC on 30 June is 00:30 on 1 July in London (BST): a July comment.
    add_comment(session, site, dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.UTC))
    add_comment(session, site, dt.datetime(2026, 6, 30, 22, 30, tzinfo=dt.UTC))
    now = dt.datetime(2026, 8, 5, tzinfo=dt.UTC)
    june = monthly_report(session, admin, "luac", Month(2026, 6), now=now)
    july = monthly_report(session, admin, "luac", Month(2026, 7), now=now)
    assert (june.received, july.received) == (1, 1)
    # Without a month: the last whole month in UK time.
    assert monthly_report(session, admin, "luac", None, now=now).month == Month(2026, 7)
    just_after = dt.datetime(2026, 7, 31, 23, 30, tzinfo=dt.UTC)  # 00:30 on 1 August, BST
    assert monthly_report(session, admin, "luac", None, now=just_after).month == Month(2026, 7)


def test_a_time_to_decision_starts_when_the_address_is_confirmed(
    session: Session, admin: Moderator
) -> None:
    site = make_site(session)
    comment = add_comment(session, site, at(2), status=S.UNCONFIRMED)
    actions.confirm_address(session, comment, trusted=False, now=at(3))
    decide(session, admin, comment, "approve", at(3) + 2 * HOUR)
    report = monthly_report(session, admin, "luac", NOVEMBER, now=AFTER_NOVEMBER)
    assert (report.median_seconds, report.decisions_timed) == (7200, 1)


def test_the_month_so_far_is_partial_and_a_month_to_come_is_refused(
    session: Session, admin: Moderator
) -> None:
    make_site(session)
    now = at(20)
    assert monthly_report(session, admin, "luac", NOVEMBER, now=now).partial
    with pytest.raises(Malformed):
        monthly_report(session, admin, "luac", Month(2026, 12), now=now)


def test_a_moderator_sees_only_the_reports_of_their_sites(session: Session) -> None:
    make_site(session)
    make_site(session, "other", "https://other.blog.gov.uk")
    moderator = make_moderator(session, "mod", role=Role.MODERATOR, sites=("luac",))
    monthly_report(session, moderator, "luac", NOVEMBER, now=AFTER_NOVEMBER)
    with pytest.raises(NotFound):
        monthly_report(session, moderator, "other", NOVEMBER, now=AFTER_NOVEMBER)


@pytest.mark.parametrize("raw", ["2026-13", "2026-00", "1999-12", "2026-1", "x" * 10_000, ""])
def test_a_month_is_parsed_strictly(raw: str) -> None:
    with pytest.raises(Malformed):
        Month.parse(raw)


def test_durations_and_percentiles_read_as_people_expect() -> None:
    assert describe_duration(None) == "—"
    assert describe_duration(0) == "0 seconds"
    assert describe_duration(40) == "40 seconds"
    assert describe_duration(12 * 60 + 5) == "12 minutes 5 seconds"
    assert describe_duration(86400 + 3 * 3600 + 60) == "1 day 3 hours"
    assert describe_duration(86400 + 300) == "1 day"
    values = list(range(1, 101))
    assert percentile(values, 0.95) == 95
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([1, 2, 3, 100], 0.95) == 100


def test_the_page_and_its_csv_name_nobody_and_defuse_formulas(
    client: FlaskClient, session: Session, admin: Moderator
) -> None:
    site = make_site(session)
    make_site(session, "other", "https://other.blog.gov.uk")
    comment = add_comment(session, site, at(2))
    # A site without a reasons list takes any reason through the API: a formula, here.
    decide(session, admin, comment, "reject", at(2, 12), "=HYPERLINK(1)")
    session.commit()
    login(client)

    page = client.get("/moderate/report/?site=luac&month=2026-11").get_data(as_text=True)
    assert "Blog luac, November 2026" in page
    assert "Rejected: =HYPERLINK(1)" in page
    assert "2 hours" in page
    assert 'href="/moderate/report/"' in client.get("/moderate/").get_data(as_text=True)

    response = client.get("/moderate/report/?site=luac&month=2026-11&format=csv")
    assert response.mimetype == "text/csv"
    assert 'filename="report-luac-2026-11.csv"' in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["site", "month", "time_zone", "measure", "detail", "value"]
    table = {(r[3], r[4]): r[5] for r in rows[1:]}
    assert table[("received", "")] == "1"
    assert table[("rejected", "'=HYPERLINK(1)")] == "1"
    assert table[("time to decision", "median seconds")] == "7200"
    for personal in ("Ada", "ada@example.com", "editor"):
        assert personal not in text and personal not in page.split("</nav>", 1)[1]


def test_the_page_refuses_other_sites_and_bad_months_without_echo(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_site(session, "other", "https://other.blog.gov.uk")
    make_moderator(session, "mod", role=Role.MODERATOR, sites=("luac",))
    login(client, "mod")
    page = client.get("/moderate/report/")
    assert page.status_code == 200
    assert 'value="other"' not in page.get_data(as_text=True)
    assert client.get("/moderate/report/?site=other").status_code == 404
    hostile = "<script>" + "9" * 10_000
    response = client.get("/moderate/report/", query_string={"month": hostile})
    assert response.status_code == 400
    assert "<script>" not in response.get_data(as_text=True)
    assert client.get("/moderate/report/?month=9999-12").status_code == 400


def test_a_report_csv_has_every_measure_once(session: Session, admin: Moderator) -> None:
    make_site(session)
    report = monthly_report(session, admin, "luac", NOVEMBER, now=AFTER_NOVEMBER)
    rows = list(csv.reader(io.StringIO(report_csv(report))))[1:]
    keys = [(r[3], r[4]) for r in rows]
    assert len(keys) == len(set(keys))
    assert {r[3] for r in rows} >= {"received", "published", "rejected", "spam", "reports", "bans"}
    assert all(r[:3] == ["luac", "2026-11", "Europe/London"] for r in rows)


def test_reports_and_bans_are_counted_from_their_audit_actions(
    session: Session, admin: Moderator
) -> None:
    site = make_site(session)
    # Recorded by issue 18's parts: a reader's counted report, a ban, a lifted ban.
    for action, when in (("report", at(3)), ("report", at(4)), ("ban.add", at(5)),
                         ("ban.lift", at(6)), ("report", at(1, month=12))):  # fmt: skip
        session.add(AuditEvent(at=when, actor="x", action=action, site_id=site.id))
    session.flush()
    report = monthly_report(session, admin, "luac", NOVEMBER, now=AFTER_NOVEMBER)
    assert (report.reports, report.bans) == (2, 1)


def test_a_moderator_of_no_site_is_told_so_and_an_unknown_site_is_not_echoed(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session, "new", role=Role.MODERATOR)
    login(client, "new")
    page = client.get("/moderate/report/")
    assert page.status_code == 200
    assert "You do not moderate any site yet." in page.get_data(as_text=True)
    hostile = "<b>" + "s" * 10_000
    response = client.get("/moderate/report/", query_string={"site": hostile})
    assert response.status_code == 404
    assert "<b>" not in response.get_data(as_text=True)
