"""A demo blog post with the comment thread embedded three ways, for ``make run`` (development
only): a server-side include (``/demo/``), the script (``/demo/script``) and an iframe
(``/demo/iframe``). Add ``?lang=cy`` for Welsh."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request, url_for

from moderation import comments, i18n
from moderation.errors import NotFound
from moderation.web.embed import fill_form_token, render_thread
from moderation.web.sessions import get_session

bp = Blueprint("demo", __name__, url_prefix="/demo")

DEMO_SITE = "demo"
DEMO_POST = "/demo/"
DEMO_TITLE = "Welcome to the demo blog"
MODES = (
    ("include", "Server-side include (works without JavaScript)"),
    ("script", "Script (embed.js)"),
    ("iframe", "Iframe"),
)
EXPLANATIONS = {
    "include": "The thread below was rendered by the service and included in this page by the "
    "server; embed.js, if it runs, enhances the form.",
    "script": "The thread below was loaded by embed.js into an empty element; without JavaScript "
    "a link to the standalone thread page shows instead.",
    "iframe": "The thread below is the standalone thread page in an iframe, resized to its "
    "content by a message from the frame.",
}


@bp.get("/", defaults={"mode": "include"})
@bp.get("/script", defaults={"mode": "script"})
@bp.get("/iframe", defaults={"mode": "iframe"})
def post_page(mode: str) -> Response:
    session = get_session()
    try:
        site = comments.get_site(session, DEMO_SITE)
    except NotFound:
        raise NotFound("The demo site does not exist yet; run 'moderation demo'.") from None
    lang = i18n.language(request.args.get("lang"))
    post_url = url_for("demo.post_page", _external=True)
    thread = ""
    if mode == "include":
        thread = fill_form_token(
            render_thread(
                site,
                DEMO_POST,
                standalone=False,
                values={"post_title": DEMO_TITLE, "post_url": post_url},
                lang=lang,
            ),
            site.slug,
        )
    query = {"lang": lang} if lang != i18n.DEFAULT_LANGUAGE else {}
    return Response(
        render_template(
            "demo/post.html",
            title=DEMO_TITLE,
            thread=thread,
            mode=mode,
            modes=MODES,
            explanation=EXPLANATIONS[mode],
            lang=lang if lang != i18n.DEFAULT_LANGUAGE else None,
            post_key=DEMO_POST,
            post_url=post_url,
            page_url=url_for(
                "embed.thread", site=site.slug, post=DEMO_POST, page="1", _external=True, **query
            ),
            moderate_url=url_for("moderate.queue"),
            site=site,
        )
    )
