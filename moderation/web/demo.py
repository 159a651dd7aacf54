"""A demo blog post with the comment thread embedded, for ``make run`` (development only)."""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from moderation import comments
from moderation.db import get_session
from moderation.errors import NotFound
from moderation.web.embed import render_thread

bp = Blueprint("demo", __name__, url_prefix="/demo")

DEMO_SITE = "demo"
DEMO_POST = "/demo/"


@bp.get("/")
def post_page() -> Response:
    session = get_session()
    try:
        site = comments.get_site(session, DEMO_SITE)
    except NotFound:
        raise NotFound("The demo site does not exist yet; run 'moderation demo'.") from None
    thread = render_thread(site, DEMO_POST, standalone=False)
    from flask import render_template

    return Response(
        render_template(
            "demo/post.html",
            thread=thread,
            moderate_url=url_for("moderate.queue"),
            site=site,
        )
    )
