"""A demo blog post with the comment thread embedded, for ``make run`` (development only)."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, url_for

from moderation import comments
from moderation.db import get_session
from moderation.errors import NotFound
from moderation.web.embed import render_thread

bp = Blueprint("demo", __name__, url_prefix="/demo")

DEMO_SITE = "demo"
DEMO_POST = "/demo/"
DEMO_TITLE = "Welcome to the demo blog"


@bp.get("/")
def post_page() -> Response:
    session = get_session()
    try:
        site = comments.get_site(session, DEMO_SITE)
    except NotFound:
        raise NotFound("The demo site does not exist yet; run 'moderation demo'.") from None
    thread = render_thread(
        site,
        DEMO_POST,
        standalone=False,
        values={"post_title": DEMO_TITLE, "post_url": url_for("demo.post_page", _external=True)},
    )
    return Response(
        render_template(
            "demo/post.html",
            title=DEMO_TITLE,
            thread=thread,
            moderate_url=url_for("moderate.queue"),
            site=site,
        )
    )
