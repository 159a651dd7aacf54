"""Take the README's screenshots with headless Chromium: `.venv/bin/python docs/screenshots.py`."""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from moderation.actions import moderate_comment
from moderation.comments import submit_comment
from moderation.events import Actor
from moderation.models import utcnow
from moderation.validation import CommentSubmission
from tests.browser import CHROMIUM, CHROMIUM_ARGS, live_server
from tests.helpers import PASSWORD, make_moderator, make_site

HERE = Path(__file__).resolve().parent
SAMPLES = [
    ("Priya Shah", "priya@example.com", "Will the council publish the minutes of these meetings?"),
    ("Tom Evans", "tom.evans@example.org", "Great to see investment in the north east.\n\nHow can local businesses get involved?"),
    ("Cheap Pills", "deals@spam.example", "Buy now at https://spam.example and https://spam.example/2"),
]  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        server_iter = live_server(Path(folder))
        server = next(server_iter)
        with server.session() as session:
            make_site(session)
            editor = make_moderator(session)
            ids = [
                submit_comment(
                    session, "luac",
                    CommentSubmission(post="/2024/03/28/from-industrial-decline/",
                                      post_title="From industrial decline to growth",
                                      author_name=name, author_email=email, body=body),
                    now=utcnow(),
                ).public_id
                for name, email, body in SAMPLES
            ]  # fmt: skip
            moderate_comment(
                session, editor, ids[0], "approve", actor=Actor("editor", editor.id), now=utcnow()
            )
            submit_comment(
                session, "luac",
                CommentSubmission(post="/2024/03/28/from-industrial-decline/", author_name="Priya Shah",
                                  author_email="priya@example.com", body="Thanks, and one more question.", parent_id=ids[0]),
                now=utcnow(),
            )  # fmt: skip
            session.commit()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, width in (("queue-desktop", 1100), ("queue-320", 320)):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(f"{server.url}/moderate/login")
                page.fill("#login", "editor")
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{server.url}/moderate/")
                page.screenshot(path=str(HERE / f"{name}.png"), full_page=True)
                page.close()
            browser.close()
        next(server_iter, None)


if __name__ == "__main__":
    main()
