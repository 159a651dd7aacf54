"""A non-editable install (the wheel) serves every page from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import moderation
    from moderation import create_app, schema
    from moderation.config import load_settings
    from moderation.models import Role
    from moderation.moderators import create_moderator, password_hasher
    from moderation.sites import create_site

    assert moderation.__file__.startswith(sys.argv[1]), moderation.__file__
    settings = load_settings({}, env="testing", secret_key="x" * 40, demo=True,
                             fast_password_hashing=True, database_url="sqlite:///" + sys.argv[2])
    app = create_app(settings)
    assert app.template_folder.startswith(sys.argv[1]), app.template_folder
    schema.upgrade(app.extensions["moderation.engine"])
    with app.extensions["moderation.sessionmaker"]() as session:
        create_site(session, slug="demo", name="Demo", origins=["http://localhost"])
        create_moderator(session, password_hasher(fast=True), login="ed", email="ed@example.org",
                         password="long enough password", role=Role.ADMIN)
        session.commit()
    client = app.test_client()
    pages = ["/demo/", "/moderate/login", "/embed/demo/thread?post=/demo/",
             "/embed/demo/thread?post=/demo/&page=1", "/api/v1/openapi.json",
             "/api/v1/sites/demo/comments?post=/demo/", "/static/embed.css", "/static/moderate.css"]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, (page, response.status_code)
        response.close()
    print("served", len(pages))
    """
)

pytestmark = pytest.mark.packaging


def test_the_wheel_ships_templates_and_serves_every_page(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("moderation-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for expected in (
        "moderation/templates/embed/thread.html",
        "moderation/static/openapi.json",
        "moderation/migrations/versions/0001_initial_schema.py",
    ):
        assert expected in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATION_")}
    env["PYTHONPATH"] = str(site)
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(site), str(tmp_path / "db.sqlite")],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "served 8" in result.stdout
