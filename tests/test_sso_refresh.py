"""The workers' refresh of single sign-on logins: each login is asked about once per period,
however many workers run, and a rotated refresh token replaces the old one (sealed).

The provider's side is tested for real in tests/test_sso.py; here the answer is a plain function,
so that the claim and the bookkeeping can be checked exactly."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from moderation.models import LoginMethod, LoginSession
from moderation.moderators import start_login_session
from moderation.sso import refresh_sessions, seal, unseal
from tests.helpers import TEST_SECRET, make_moderator

T0 = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)
EVERY = dt.timedelta(minutes=15)


def test_a_login_is_asked_about_once_per_period_and_keeps_the_rotated_token(
    connection: Connection, session: Session
) -> None:
    moderator = make_moderator(session)
    start_login_session(
        session, moderator, now=T0, method=LoginMethod.SSO, refresh_token=seal("rt-1", TEST_SECRET)
    )
    session.commit()
    asked: list[str] = []

    def provider(token: str) -> dict[str, str]:
        asked.append(token)
        return {"refresh_token": f"rt-{len(asked) + 1}"}

    workers = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    later = T0 + dt.timedelta(minutes=20)
    first = list(refresh_sessions(workers, provider, secret=TEST_SECRET, now=later, every=EVERY))
    again = list(refresh_sessions(workers, provider, secret=TEST_SECRET, now=later, every=EVERY))
    assert [allowed for _, allowed in first] == [True]
    assert again == []  # claimed: a second worker does not ask with the same token
    assert asked == ["rt-1"]

    much_later = later + EVERY
    list(refresh_sessions(workers, provider, secret=TEST_SECRET, now=much_later, every=EVERY))
    assert asked == ["rt-1", "rt-2"]  # the rotated token, as the provider handed it back
    session.expire_all()
    login = session.scalars(select(LoginSession)).one()
    assert login.refreshed_at == much_later
    assert login.refresh_token is not None and "rt-3" not in login.refresh_token
    assert unseal(login.refresh_token, TEST_SECRET) == "rt-3"
    assert unseal(login.refresh_token, "another secret key of enough length here") is None
