"""The `moderation` command, run as an operator would: a real process on a real database."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from moderation import create_app
from moderation.config import ConfigError, load_settings
from moderation.models import AuditEvent
from tests.helpers import MODERATION, TEST_SECRET, run_command, run_process

pytestmark = pytest.mark.subprocess


def test_an_operator_sets_up_a_site_a_moderator_and_a_token(tmp_path: Path) -> None:
    assert run_process(tmp_path, "db", "upgrade").returncode == 0
    added = run_process(
        tmp_path,
        "site", "add", "luac", "--name", "Levelling Up Advisory Council",
        "--origin", "https://levellingupadvisorycouncil.blog.gov.uk/",
        "--origin", "https://www.example.gov.uk",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert (
        "https://levellingupadvisorycouncil.blog.gov.uk, https://www.example.gov.uk" in added.stdout
    )

    moderator = run_process(
        tmp_path,
        "moderator", "add", "editor", "--email", "editor@example.gov.uk",
        "--role", "admin", "--password-stdin",
        stdin="a long enough passphrase\n",
    )  # fmt: skip
    assert moderator.returncode == 0, moderator.stderr

    created = run_process(tmp_path, "token", "create", "slack-bot")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("mod_") and len(token) > 40

    settings = load_settings(
        {},
        env="testing",
        secret_key=TEST_SECRET,
        database_url=f"sqlite:///{tmp_path / 'cli.db'}",
    )
    app = create_app(settings)
    response = app.test_client().get(
        "/api/v1/moderation/comments", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    with app.extensions["moderation.sessionmaker"]() as session:
        audited = session.execute(select(AuditEvent.actor, AuditEvent.action)).all()
    assert [tuple(row) for row in audited] == [
        ("command line", "site.add"),
        ("command line", "moderator.add"),
        ("command line", "token.add"),
    ]


def test_cli_errors_are_clear_and_change_nothing(tmp_path: Path) -> None:
    run_process(tmp_path, "db", "upgrade")
    bad = run_process(tmp_path, "site", "add", "luac", "--name", "x", "--origin", "ftp://x/path")
    assert bad.returncode != 0
    assert "is not an origin" in bad.stderr
    assert run_process(tmp_path, "site", "list").stdout == ""

    short = run_process(
        tmp_path, "moderator", "add", "ed", "--email", "ed@example.org", "--password-stdin",
        stdin="short\n",
    )  # fmt: skip
    assert short.returncode != 0
    assert "at least 8 characters" in short.stderr

    no_admin = run_process(tmp_path, "token", "create", "x")
    assert no_admin.returncode != 0 and "--moderator" in no_admin.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    result = run_process(
        tmp_path, "db", "upgrade", env={"MODERATION_ENV": "production", "MODERATION_SECRET_KEY": ""}
    )
    assert result.returncode != 0
    assert "MODERATION_SECRET_KEY must be set" in result.stderr


def test_settings_come_from_the_environment_and_a_toml_file(tmp_path: Path) -> None:
    toml = tmp_path / "moderation.toml"
    toml.write_text('max_request_bytes = 1000\nlog_level = "WARNING"\n')
    settings = load_settings(
        {
            "MODERATION_CONFIG_FILE": str(toml),
            "MODERATION_ENV": "development",
            "MODERATION_LOG_LEVEL": "DEBUG",
            "MODERATION_SESSION_COOKIE_SECURE": "true",
        }
    )
    assert settings.max_request_bytes == 1000
    assert settings.log_level == "DEBUG", "the environment wins over the file"
    assert settings.cookie_secure is True
    assert load_settings({"MODERATION_ENV": "development"}).cookie_secure is False

    with pytest.raises(ConfigError, match="whole number"):
        load_settings({"MODERATION_ENV": "development", "MODERATION_MAX_REQUEST_BYTES": "lots"})
    toml.write_text("no_such_setting = 1\n")
    with pytest.raises(ConfigError, match="unknown settings"):
        load_settings({"MODERATION_CONFIG_FILE": str(toml), "MODERATION_ENV": "development"})
    with pytest.raises(ConfigError, match="only allowed in testing"):
        load_settings({"MODERATION_ENV": "development", "MODERATION_FAST_PASSWORD_HASHING": "true"})
    for address in ("http://[", "https://x:99999", "comments.example.org"):
        with pytest.raises(ConfigError, match="MODERATION_PUBLIC_URL must be an http"):
            load_settings({"MODERATION_ENV": "development", "MODERATION_PUBLIC_URL": address})


def test_a_removed_setting_still_starts_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Former settings, now constants: an operator who still sets one learns it is ignored."""
    toml = tmp_path / "moderation.toml"
    toml.write_text("mail_digest_minutes = 5\n")
    with caplog.at_level(logging.WARNING, logger="moderation.config"):
        settings = load_settings(
            {
                "MODERATION_CONFIG_FILE": str(toml),
                "MODERATION_ENV": "development",
                "MODERATION_RATELIMIT_KEY_PREFIX": "blog",
            }
        )
    assert settings.env == "development"
    assert [record.getMessage() for record in caplog.records] == [
        "MODERATION_MAIL_DIGEST_MINUTES is no longer a setting and is ignored (see CHANGELOG.md)",
        "MODERATION_RATELIMIT_KEY_PREFIX is no longer a setting and is ignored (see CHANGELOG.md)",
    ]


def test_personal_data_and_purge_commands(tmp_path: Path) -> None:
    run_process(tmp_path, "db", "upgrade")
    exported = run_process(tmp_path, "personal-data", "export", "--email", "Someone@Example.com")
    assert exported.returncode == 0, exported.stderr
    assert '"email": "Someone@example.com"' in exported.stdout
    refused = run_process(
        tmp_path, "personal-data", "erase", "--email", "someone@example.com", stdin="n\n"
    )
    assert refused.returncode != 0
    erased = run_process(
        tmp_path, "personal-data", "erase", "--email", "someone@example.com", "--yes"
    )
    assert "Erased personal data from 0 comments" in erased.stdout
    bad = run_process(tmp_path, "personal-data", "export", "--email", "not an address")
    assert bad.returncode != 0 and "correct format" in bad.stderr
    purged = run_process(tmp_path, "purge", "--dry-run")
    assert purged.returncode == 0 and purged.stdout.startswith("Would clear client data from 0")


def test_the_deliverability_check_is_off_by_default_only_in_development() -> None:
    assert load_settings({"MODERATION_ENV": "development"}).deliverability_enabled is False
    production = load_settings({"MODERATION_SECRET_KEY": TEST_SECRET})
    assert production.deliverability_enabled is True
    forced = load_settings(
        {"MODERATION_ENV": "development", "MODERATION_CHECK_DELIVERABILITY": "true"}
    )
    assert forced.deliverability_enabled is True


def test_the_demo_sets_up_once_and_its_no_js_form_returns_to_the_include_page(
    tmp_path: Path,
) -> None:
    assert run_process(tmp_path, "db", "upgrade").returncode == 0
    env = {"MODERATION_DEMO": "true"}
    for _ in range(2):  # make run calls it at every start
        done = run_process(tmp_path, "demo", env=env)
        assert done.returncode == 0, done.stderr
        assert "Log in as:        demo / " in done.stdout
    app = create_app(
        load_settings(
            {}, env="testing", secret_key=TEST_SECRET, demo=True, time_trap="off",
            check_deliverability=False,
            database_url=f"sqlite:///{tmp_path / 'cli.db'}",
        )
    )  # fmt: skip
    client = app.test_client()
    # The first comment comes from the script page, whose address embed.js sends as post_url.
    response = client.post(
        "/embed/demo/thread?post=/demo/",
        data={
            "author_name": "Ada", "author_email": "ada@example.com", "body": "Hello demo",
            "post_url": "http://127.0.0.1:5000/demo/script",
        },
    )  # fmt: skip
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"] == "http://127.0.0.1:5000/demo/#comment-submitted"


def test_the_command_line_disables_and_enables_a_moderator(tmp_path: Path) -> None:
    assert run_command(tmp_path, "db", "upgrade").returncode == 0
    run_command(
        tmp_path, "moderator", "add", "bob", "--email", "bob@example.gov.uk", "--password-stdin",
        stdin="a long enough passphrase\n",
    )  # fmt: skip
    disabled = run_command(tmp_path, "moderator", "disable", "bob")
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.strip() == "Disabled bob."
    assert run_command(tmp_path, "moderator", "enable", "bob").stdout.strip() == "Enabled bob."
    unknown = run_command(tmp_path, "moderator", "disable", "nobody")
    assert unknown.returncode != 0 and "no moderator with that login" in unknown.stderr


def test_serve_with_the_demo_prints_its_summary_last_on_the_port_asked(tmp_path: Path) -> None:
    """What make run shows: a quiet migration, then the demo's addresses and login as the last
    lines once the server answers, on any port (make run PORT=...)."""
    upgraded = run_process(tmp_path, "db", "upgrade", "--quiet")
    assert upgraded.returncode == 0 and upgraded.stdout == "" and upgraded.stderr == ""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATION_")}
    env.update(
        MODERATION_ENV="testing", MODERATION_SECRET_KEY=TEST_SECRET, MODERATION_DEMO="true",
        MODERATION_FAST_PASSWORD_HASHING="true",
        MODERATION_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
    )  # fmt: skip
    server = subprocess.Popen(
        [MODERATION, "serve", "--port", str(port), "--demo"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("  Log in as:") for line in lines):
            line = server.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        lines.append(server.stdout.readline())  # the blank line that closes the summary
        url = f"http://127.0.0.1:{port}"
        assert [line.strip() for line in lines[-5:]] == [
            "",
            f"Demo post page:   {url}/demo/",
            f"Moderation queue: {url}/moderate/",
            lines[-2].strip(),
            "",
        ]
        assert re.fullmatch(r"Log in as:\s+demo / \S{16}", lines[-2].strip())
        with urllib.request.urlopen(f"{url}/demo/", timeout=10) as page:
            assert page.status == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()
