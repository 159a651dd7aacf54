"""The queue's "Why it was held" filter lists exactly the spam pipeline's checks, by their labels,
in the UI, the moderation API and its OpenAPI description (issue 16: derived, so never drifting)."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import moderation
from moderation.spam import Check, check_labels, default_pipeline
from tests.helpers import add_comment, json_of, login, make_moderator, make_site, make_token

OPENAPI = Path(moderation.__file__).parent / "static" / "openapi.json"


def every_check() -> list[Check]:
    return list(default_pipeline(secret="x" * 32, time_trap=True, disposable=True).checks)


def test_every_check_of_the_pipeline_has_a_label_of_its_own() -> None:
    checks = every_check()
    assert list(check_labels()) == [check.name for check in checks]
    labels = [check.label for check in checks]
    assert all(label.strip() and label[0].isupper() for label in labels)
    assert len(set(labels)) == len(labels)
    assert {"classifier", "deliverability", "honeypot", "links"} <= set(check_labels())


def test_the_queue_offers_exactly_the_pipelines_checks(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session)
    login(client)
    page = client.get("/moderate/").get_data(as_text=True)
    select = page[page.index('<select id="signal"') :]
    select = select[: select.index("</select>")]
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)
    assert [(value, unescape(label)) for value, label in options] == [
        ("", "Any reason"),
        *check_labels().items(),
    ]


def test_the_api_and_its_description_take_exactly_the_pipelines_checks(
    client: FlaskClient, session: Session
) -> None:
    site = make_site(session)
    token = make_token(session, make_moderator(session))
    described = json.loads(OPENAPI.read_text())["paths"]["/api/v1/moderation/comments"]["get"]
    [signal] = [p for p in described["parameters"] if p["name"] == "signal"]
    assert signal["schema"]["enum"] == list(check_labels())

    held = add_comment(
        session, site, signals=[{"check": "classifier", "verdict": "hold", "reason": "likely"}]
    )
    add_comment(session, site, body_text="Another.")
    session.commit()
    auth = {"Authorization": f"Bearer {token}"}
    found = client.get("/api/v1/moderation/comments?signal=classifier", headers=auth)
    assert [c["id"] for c in json_of(found)["comments"]] == [held.public_id]
    refused = client.get("/api/v1/moderation/comments?signal=reported", headers=auth)
    assert refused.status_code == 400
    assert json_of(refused)["error"]["fields"]["signal"] == "One of " + ", ".join(check_labels())
