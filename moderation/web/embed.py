"""The embed: a server-rendered thread fragment with the comment form, and its no-JS form post."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from moderation import comments
from moderation.db import get_session
from moderation.errors import UnsupportedMediaType, ValidationFailed
from moderation.models import Post, Site
from moderation.spam import FORM_TOKEN_FIELD, HONEYPOT_FIELD
from moderation.validation import parse_submission
from moderation.web.context import client_address, now, required_post_key
from moderation.web.screening import screening

bp = Blueprint("embed", __name__, url_prefix="/embed")

PRIVACY_HINT = "We only ask for your email address so we know you're a real person."
FORM_FIELDS = ("post_title", "post_url", "author_name", "author_email", "body", "parent_id")


def render_thread(
    site: Site,
    key: str,
    *,
    standalone: bool,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> str:
    """The thread and the form for one post, as a fragment or a standalone page."""
    session = get_session()
    post = comments.find_post(session, site, key)
    page = comments.approved_comments(session, post, limit=comments.MAX_PAGE) if post else None
    context: dict[str, Any] = {
        "site": site,
        "post": post,
        "post_key": key,
        "tree": comments.nest(page.comments) if page else [],
        "count": len(page.comments) if page else 0,
        "closed": post is not None and comments.is_closed(post, now()),
        "values": values or {},
        "errors": errors or {},
        "privacy_hint": PRIVACY_HINT,
        "action": url_for("embed.submit", site=site.slug, post=key, _external=True),
        "stylesheet": url_for("static", filename="embed.css", _external=True),
        "form_token": screening().form_token(site.slug),
        "honeypot_field": HONEYPOT_FIELD,
        "form_token_field": FORM_TOKEN_FIELD,
    }
    return render_template("embed/page.html" if standalone else "embed/thread.html", **context)


@bp.get("/<site>/thread")
def thread(site: str) -> Response:
    found = comments.get_site(get_session(), site)
    standalone = request.args.get("page") == "1"
    return Response(render_thread(found, required_post_key(), standalone=standalone))


@bp.post("/<site>/thread")
def submit(site: str) -> ResponseReturnValue:
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise UnsupportedMediaType("Send the form as application/x-www-form-urlencoded.")
    key = required_post_key()
    values = {name: request.form.get(name, "") for name in FORM_FIELDS}
    session = get_session()
    screen = screening()
    try:
        submission = parse_submission({**values, "post": key})
        screen.rate_limit(site, submission)
        evidence = screen.evidence(submission, request.form)
        comment = comments.submit_comment(
            session,
            site,
            submission,
            now=now(),
            origin=request.headers.get("Origin"),
            client_address=client_address(),
            user_agent=request.user_agent.string,
            pipeline=screen.pipeline,
            evidence=evidence,
        )
    except ValidationFailed as error:
        session.rollback()
        found = comments.get_site(session, site)
        page = render_thread(found, key, standalone=True, values=values, errors=error.fields)
        return Response(page, status=422)
    post: Post = comment.post
    session.commit()
    return redirect(f"{post.url}#comment-submitted", code=303)
