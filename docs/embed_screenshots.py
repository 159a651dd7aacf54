"""Take the embed's README screenshots of the demo post page with headless Chromium:
`.venv/bin/python docs/embed_screenshots.py` (writes docs/embed-desktop.png, docs/embed-320.png)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from moderation.actions import moderate_comment, reply_as_blog
from moderation.comments import submit_comment
from moderation.events import Actor
from moderation.models import utcnow
from moderation.sites import create_site
from moderation.validation import CommentSubmission
from moderation.web.demo import DEMO_POST, DEMO_SITE, DEMO_TITLE
from tests.browser import CHROMIUM, CHROMIUM_ARGS, live_server
from tests.helpers import make_moderator

HERE = Path(__file__).resolve().parent
SAMPLES = [
    ("Priya Shah", "Will the council publish the minutes of these meetings?", None),
    ("Tom Evans", "Great to see investment in the north east.\n\nHow can local businesses get involved?", None),
    ("Sam Okafor", "Seconded: the minutes would help.", 0),
]  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        server_iter = live_server(Path(folder))
        server = next(server_iter)
        with server.session() as session:
            create_site(session, slug=DEMO_SITE, name="Demo blog", origins=[server.url])
            editor = make_moderator(session)
            actor = Actor("editor", editor.id)
            ids: list[str] = []
            for name, body, parent in SAMPLES:
                comment = submit_comment(
                    session, DEMO_SITE,
                    CommentSubmission(post=DEMO_POST, post_title=DEMO_TITLE,
                                      post_url=f"{server.url}/demo/", author_name=name,
                                      author_email="reader@example.com", body=body,
                                      parent_id=ids[parent] if parent is not None else None),
                    now=utcnow(),
                )  # fmt: skip
                ids.append(comment.public_id)
                moderate_comment(
                    session, editor, comment.public_id, "approve", actor=actor, now=utcnow()
                )
            reply_as_blog(
                session,
                editor,
                ids[0],
                "Yes: we publish them within two weeks of each meeting.",
                actor=actor,
                now=utcnow(),
            )
            session.commit()  # fmt: skip
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, width in (("embed-desktop", 1100), ("embed-320", 320)):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(f"{server.url}/demo/")
                page.screenshot(path=str(HERE / f"{name}.png"), full_page=True)
                page.close()
            browser.close()
        next(server_iter, None)


if __name__ == "__main__":
    main()
