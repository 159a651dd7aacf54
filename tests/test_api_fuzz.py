"""Schemathesis against /api/v1/openapi.json: no 5xx, every response matches its schema and a
documented status, for generated valid and invalid requests to every JSON endpoint.

The app runs on a SQLite file of its own, built when the module loads (schemathesis generates its
tests from the live description at collection time).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.orm import Session

from moderation import create_app, schema
from tests.helpers import make_moderator, make_site, make_token, settings_for_tests

_folder = Path(tempfile.mkdtemp(prefix="moderation-fuzz-"))
atexit.register(shutil.rmtree, _folder, ignore_errors=True)
app = create_app(settings_for_tests(database_url=f"sqlite:///{_folder / 'fuzz.db'}"))
schema.upgrade(app.extensions["moderation.engine"])
with Session(app.extensions["moderation.engine"]) as _session:
    make_site(_session)
    TOKEN = make_token(_session, make_moderator(_session))

# A body over the request cap is rightly refused with the documented 413 before it is read.
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
config = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}}
)
api = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)


@api.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_keeps_its_contract(case: Any) -> None:
    # Every check but "schema-valid data is accepted": rules no schema can hold (a post URL
    # under the site's origins, a parent that exists, a free slug) rightly refuse some
    # schema-valid requests with a documented 404, 409 or 422.
    # A valid token replaces the generated Authorization, so the endpoints are reached, except
    # when the headers are the invalid part of a negative case: replacing them would make the
    # request valid and its 200 a false "invalid data accepted".
    headers = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    if headers is not None and headers.mode.is_negative:
        case.call_and_validate(excluded_checks=[positive_data_acceptance])
        return
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=[positive_data_acceptance]
    )
