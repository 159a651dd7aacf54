"""The second factor of password logins: TOTP with codes computed from the shared secret at an
injected time, recovery codes, enrolment forced by MODERATION_MFA_REQUIRED, throttling, resets,
a fresh factor for API tokens, and "Your sessions"."""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from moderation import create_app, second_factor
from moderation.config import Settings
from moderation.errors import InvalidSecondFactor, RateLimited
from moderation.models import AuditEvent, LoginSession, Moderator, Role
from moderation.moderators import create_moderator, password_hasher
from tests.helpers import (
    PASSWORD,
    app_in_transaction,
    csrf_from,
    json_of,
    make_moderator,
    make_token,
    run_command,
    settings_for_tests,
)

START = dt.datetime(2026, 12, 6, 9, 0, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.moment = START

    def __call__(self) -> dt.datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mfa_app(engine: Engine, connection: Connection, clock: Clock) -> Flask:
    app = app_in_transaction(engine, connection, mfa_required="admins")
    app.extensions["moderation.clock"] = clock
    return app


@pytest.fixture
def client(mfa_app: Flask) -> FlaskClient:
    return mfa_app.test_client()


def post(
    client: FlaskClient, path: str, page: str = "/moderate/login", **data: str
) -> TestResponse:
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def password_step(client: FlaskClient, login: str = "editor") -> str:
    page = client.get("/moderate/login").get_data(as_text=True)
    response = client.post(
        "/moderate/login",
        data={"login": login, "password": PASSWORD, "csrf_token": csrf_from(page)},
    )
    assert response.status_code == 303
    return response.headers["Location"]


def second_step(client: FlaskClient, code: str, next_path: str = "") -> tuple[int, str]:
    page = client.get("/moderate/security/verify").get_data(as_text=True)
    path = "/moderate/security/verify" + (f"?next={next_path}" if next_path else "")
    response = client.post(path, data={"code": code, "csrf_token": csrf_from(page)})
    return response.status_code, response.get_data(as_text=True)


def enrol_totp(client: FlaskClient, clock: Clock) -> tuple[str, list[str]]:
    """Set up an authenticator app as a person would: read the key, type the code it shows."""
    page = client.get("/moderate/security/totp").get_data(as_text=True)
    assert "<svg" in page  # the QR code, inline
    key = re.search(r'<code id="totp-key">([A-Z2-7 ]+)</code>', page)
    assert key, page
    secret = key.group(1).replace(" ", "")
    code = pyotp.TOTP(secret).at(clock())
    response = client.post(
        "/moderate/security/totp", data={"code": code, "csrf_token": csrf_from(page)}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    codes = re.findall(r"<li><code>([a-z2-7-]+)</code></li>", response.get_data(as_text=True))
    return secret, codes


def logout(client: FlaskClient) -> None:
    post(client, "/moderate/logout", page="/moderate/security/")


def test_an_admin_must_set_up_a_second_factor_before_any_moderation_page(
    client: FlaskClient, session: Session, clock: Clock
) -> None:
    make_moderator(session)  # an admin
    password_step(client)
    for path in ("/moderate/", "/moderate/audit", "/moderate/admin/tokens", "/moderate/account"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].endswith("/moderate/security/")
    assert "You must set up a second factor" in client.get("/moderate/security/").get_data(
        as_text=True
    )
    wrong = client.post(
        "/moderate/security/totp",
        data={
            "code": "000000",
            "csrf_token": csrf_from(client.get("/moderate/security/totp").get_data(as_text=True)),
        },
    )
    assert wrong.status_code == 422
    _, codes = enrol_totp(client, clock)
    assert len(codes) == second_factor.RECOVERY_CODE_COUNT == len(set(codes))
    assert client.get("/moderate/").status_code == 200
    enrolled = session.scalars(select(AuditEvent).where(AuditEvent.action == "moderator.mfa_add"))
    assert [e.after["factor"] for e in enrolled] == ["totp"]


def test_a_moderator_without_admin_rights_is_not_forced_under_admins(
    client: FlaskClient, session: Session
) -> None:
    make_moderator(session, "reader", role=Role.MODERATOR)
    password_step(client, "reader")
    assert client.get("/moderate/").status_code == 200


def test_login_asks_for_the_code_and_a_code_is_accepted_once(
    client: FlaskClient, session: Session, clock: Clock
) -> None:
    make_moderator(session)
    password_step(client)
    secret, _ = enrol_totp(client, clock)
    logout(client)

    clock.advance(minutes=5)
    assert password_step(client).endswith("/moderate/security/verify")
    # Half-way in is not in: the queue still asks for a login.
    assert "/moderate/login" in client.get("/moderate/").headers["Location"]
    status, page = second_step(client, "123456")
    assert status == 401
    assert "not correct, or has been used already" in page
    code = pyotp.TOTP(secret).at(clock())
    assert second_step(client, code)[0] == 303
    assert client.get("/moderate/").status_code == 200
    logout(client)

    # The same code again, within its 30-second window (and the drift allowed): refused.
    clock.advance(seconds=10)
    password_step(client)
    assert second_step(client, code)[0] == 401
    # The code of the next time step: accepted.
    clock.advance(seconds=30)
    assert second_step(client, pyotp.TOTP(secret).at(clock()))[0] == 303


def test_a_recovery_code_works_once(client: FlaskClient, session: Session, clock: Clock) -> None:
    make_moderator(session)
    password_step(client)
    _, codes = enrol_totp(client, clock)
    logout(client)
    password_step(client)
    status, _ = second_step(client, codes[3].upper().replace("-", " "))  # as typed
    assert status == 303
    assert "9 left" in client.get("/moderate/").get_data(as_text=True)
    logout(client)
    password_step(client)
    assert second_step(client, codes[3])[0] == 401
    moderator = session.scalars(select(Moderator)).one()
    assert second_factor.recovery_codes_left(session, moderator) == 9


def test_the_second_step_is_throttled_per_account(
    client: FlaskClient, session: Session, clock: Clock
) -> None:
    make_moderator(session)
    password_step(client)
    secret, _ = enrol_totp(client, clock)
    logout(client)
    password_step(client)
    for _ in range(second_factor.MAX_SECOND_STEPS_PER_ACCOUNT):
        assert second_step(client, "000000")[0] == 401
    clock.advance(seconds=30)
    status, page = second_step(client, pyotp.TOTP(secret).at(clock()))
    assert status == 429  # even the right code, once the limit is reached
    assert "Too many attempts" in page
    clock.advance(minutes=16)
    password_step(client)
    assert second_step(client, pyotp.TOTP(secret).at(clock()))[0] == 303


def test_creating_an_api_token_needs_a_fresh_second_factor(
    client: FlaskClient, session: Session, clock: Clock
) -> None:
    make_moderator(session)
    password_step(client)
    secret, _ = enrol_totp(client, clock)
    clock.advance(minutes=11)
    response = post(
        client, "/moderate/admin/tokens", page="/moderate/admin/tokens",
        moderator="editor", name="bot",
    )  # fmt: skip
    assert response.status_code == 303
    assert "/moderate/security/verify" in response.headers["Location"]
    assert "mod_" not in client.get("/moderate/admin/tokens").get_data(as_text=True)
    status, _ = second_step(client, pyotp.TOTP(secret).at(clock()), "/moderate/admin/tokens")
    assert status == 303
    created = post(
        client, "/moderate/admin/tokens", page="/moderate/admin/tokens",
        moderator="editor", name="bot",
    )  # fmt: skip
    assert created.status_code == 200
    assert "mod_" in created.get_data(as_text=True)


def test_an_admin_resets_a_second_factor_and_the_moderator_enrols_again(
    client: FlaskClient, mfa_app: Flask, session: Session, clock: Clock
) -> None:
    make_moderator(session)
    make_moderator(session, "chief")
    password_step(client)
    enrol_totp(client, clock)
    other = mfa_app.test_client()
    password_step(other, "chief")
    enrol_totp(other, clock)
    response = post(
        other, "/moderate/admin/moderators/editor/mfa-reset",
        page="/moderate/admin/moderators/editor/sessions",
    )  # fmt: skip
    assert response.status_code == 303
    editor = session.scalars(select(Moderator).where(Moderator.login == "editor")).one()
    session.refresh(editor)
    assert editor.totp_secret is None
    assert not second_factor.has_second_factor(session, editor)
    # Their logins ended; their next login goes to enrolment, not to a second step.
    assert "/moderate/login" in client.get("/moderate/").headers["Location"]
    assert password_step(client).endswith("/moderate/")
    assert client.get("/moderate/").headers["Location"].endswith("/moderate/security/")
    reset = session.scalars(select(AuditEvent).where(AuditEvent.action == "moderator.mfa_reset"))
    assert [(e.actor, e.after["login"]) for e in reset] == [("chief", "editor")]


def test_the_command_line_resets_a_second_factor(tmp_path: Path) -> None:
    """``moderation moderator mfa-reset LOGIN``, with the environment an operator's has."""
    assert run_command(tmp_path, "db", "upgrade").returncode == 0
    added = run_command(
        tmp_path, "moderator", "add", "editor", "--email", "editor@example.gov.uk",
        "--role", "admin", "--password-stdin", stdin="a long enough passphrase\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    app = create_app(settings_for_tests(database_url=f"sqlite:///{tmp_path / 'cli.db'}"))
    with app.extensions["moderation.sessionmaker"]() as session:
        editor = session.scalars(select(Moderator)).one()
        editor.totp_secret = second_factor.new_totp_secret()
        session.commit()
    result = run_command(tmp_path, "moderator", "mfa-reset", "editor")
    assert result.returncode == 0, result.stderr
    assert "Reset the second factors of editor" in result.stdout
    with app.extensions["moderation.sessionmaker"]() as session:
        assert session.scalars(select(Moderator)).one().totp_secret is None
        audit = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "moderator.mfa_reset")
        ).one()
        assert audit.actor == "command line"
    assert run_command(tmp_path, "moderator", "mfa-reset", "nobody").returncode != 0
    app.extensions["moderation.engine"].dispose()


def test_development_never_forces_a_second_factor() -> None:
    assert Settings(env="development").effective_mfa_required == "off"
    assert Settings(env="production").effective_mfa_required == "admins"
    assert Settings(env="production", mfa_required="all").effective_mfa_required == "all"


def test_your_sessions_lists_and_signs_out_everywhere(
    mfa_app: Flask, session: Session, clock: Clock
) -> None:
    make_moderator(session, "reader", role=Role.MODERATOR)
    phone = mfa_app.test_client()
    phone.environ_base["HTTP_USER_AGENT"] = (
        "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/130.0 Mobile Safari/537.36"
    )
    laptop = mfa_app.test_client()
    laptop.environ_base["HTTP_USER_AGENT"] = (
        "Mozilla/5.0 (Windows NT 10.0; rv:133.0) Gecko/20100101 Firefox/133.0"
    )
    password_step(phone, "reader")
    clock.advance(minutes=3)
    password_step(laptop, "reader")
    page = laptop.get("/moderate/account/sessions").get_data(as_text=True)
    assert "Chrome on Android" in page
    assert "Firefox on Windows (this browser)" in page
    assert "127.0.0.0" in page or "127.0.0.1" in page  # the network, as recorded
    response = post(laptop, "/moderate/account/sessions/end", page="/moderate/account/sessions")
    assert response.status_code == 303
    assert "/moderate/login" in phone.get("/moderate/").headers["Location"]
    assert "/moderate/login" in laptop.get("/moderate/").headers["Location"]
    count = session.scalar(select(func.count()).select_from(LoginSession))
    assert count == 0


def test_an_admin_sees_and_ends_a_moderators_sessions(
    mfa_app: Flask, session: Session, clock: Clock
) -> None:
    make_moderator(session, "reader", role=Role.MODERATOR)
    make_moderator(session, "chief")
    reader = mfa_app.test_client()
    password_step(reader, "reader")
    chief = mfa_app.test_client()
    password_step(chief, "chief")
    enrol_totp(chief, clock)
    page = chief.get("/moderate/admin/moderators/reader/sessions").get_data(as_text=True)
    assert "Sessions of reader" in page
    ended = post(
        chief, "/moderate/admin/moderators/reader/sessions/end",
        page="/moderate/admin/moderators/reader/sessions",
    )  # fmt: skip
    assert ended.status_code == 303
    assert "/moderate/login" in reader.get("/moderate/").headers["Location"]
    audit = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "moderator.sessions_end")
    ).one()
    assert audit.actor == "chief"
    assert audit.after == {"login": "reader", "ended": 1}


def test_a_moderator_cannot_reach_the_admins_session_pages(
    client: FlaskClient, session: Session
) -> None:
    make_moderator(session, "reader", role=Role.MODERATOR)
    make_moderator(session)
    password_step(client, "reader")
    assert client.get("/moderate/admin/moderators/editor/sessions").status_code == 403


@pytest.mark.concurrency
def test_concurrent_guesses_at_the_second_step_are_all_counted(engine: Engine) -> None:
    """Twelve guesses at once, on committed data: exactly the limit get their code checked."""
    committed = sessionmaker(engine, expire_on_commit=False)
    with committed() as session:
        racer = create_moderator(
            session,
            password_hasher(fast=True),
            login="mfa-racer",
            email="mfa-racer@example.org",
            password=PASSWORD,
            role=Role.ADMIN,
        )
        racer.totp_secret = second_factor.new_totp_secret()
        session.commit()
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def guess(n: int) -> None:
        with committed() as session:
            moderator = session.get(Moderator, racer.id)
            assert moderator is not None
            barrier.wait()
            try:
                second_factor.count_attempt(session, moderator, f"10.0.{n}.0", now=START)
                session.commit()
                second_factor.verify_code(session, moderator, "000000", now=START)
                result = "checked and right"
            except RateLimited:
                session.rollback()
                result = "refused"
            except InvalidSecondFactor:
                session.rollback()
                result = "checked"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(outcomes) == ["checked"] * second_factor.MAX_SECOND_STEPS_PER_ACCOUNT + [
            "refused"
        ] * (12 - second_factor.MAX_SECOND_STEPS_PER_ACCOUNT)
    finally:
        with committed() as session:
            session.execute(delete(Moderator).where(Moderator.login == "mfa-racer"))
            session.commit()


def test_the_api_creates_a_token_only_with_the_creators_second_factor(
    client: FlaskClient, session: Session, clock: Clock
) -> None:
    admin = make_moderator(session)
    secret = second_factor.new_totp_secret()
    admin.totp_secret = secret
    session.commit()
    bearer = {"Authorization": f"Bearer {make_token(session, admin)}"}
    wanted = {"moderator": "editor", "name": "second-bot"}

    missing = client.post("/api/v1/moderation/tokens", json=wanted, headers=bearer)
    assert missing.status_code == 403
    assert json_of(missing)["error"]["code"] == "second_factor_required"
    wrong = client.post(
        "/api/v1/moderation/tokens", json={**wanted, "second_factor": "000000"}, headers=bearer
    )
    assert wrong.status_code == 401
    assert json_of(wrong)["error"]["code"] == "invalid_second_factor"
    right = client.post(
        "/api/v1/moderation/tokens",
        json={**wanted, "second_factor": pyotp.TOTP(secret).at(clock())},
        headers=bearer,
    )
    assert right.status_code == 201, right.get_data(as_text=True)
    assert json_of(right)["token"].startswith("mod_")


def test_the_api_refuses_tokens_from_an_admin_who_must_enrol_first(
    client: FlaskClient, session: Session
) -> None:
    admin = make_moderator(session)  # MODERATION_MFA_REQUIRED=admins, and none set up
    bearer = {"Authorization": f"Bearer {make_token(session, admin)}"}
    response = client.post(
        "/api/v1/moderation/tokens", json={"moderator": "editor", "name": "x"}, headers=bearer
    )
    assert response.status_code == 403
    assert "Set up a second factor" in json_of(response)["error"]["message"]


def test_admins_list_and_end_a_moderators_sessions_through_the_api(
    mfa_app: Flask, session: Session
) -> None:
    make_moderator(session, "reader", role=Role.MODERATOR)
    admin = make_moderator(session, "chief", role=Role.MODERATOR)
    reader = mfa_app.test_client()
    reader.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
    password_step(reader, "reader")
    api = mfa_app.test_client()
    bearer = {"Authorization": f"Bearer {make_token(session, admin)}"}
    # Only admins.
    assert (
        api.get("/api/v1/moderation/moderators/reader/sessions", headers=bearer).status_code == 403
    )
    admin.role = Role.ADMIN
    session.commit()
    listed = json_of(api.get("/api/v1/moderation/moderators/reader/sessions", headers=bearer))
    [only] = listed["sessions"]
    assert only["device"] == "Firefox on Linux"
    assert only["method"] == "password"
    assert only["second_factor"] is False
    ended = api.post("/api/v1/moderation/moderators/reader/sessions/end", headers=bearer)
    assert json_of(ended) == {"ended": 1}
    assert "/moderate/login" in reader.get("/moderate/").headers["Location"]
    assert json_of(api.get("/api/v1/moderation/moderators/reader/sessions", headers=bearer)) == {
        "sessions": []
    }
