"""The public JSON API, keyed by site slug: read approved comments, submit new ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select

from moderation import comments
from moderation.db import get_session
from moderation.events import rfc3339
from moderation.models import Comment, CommentStatus, Site
from moderation.validation import parse_submission
from moderation.web.context import client_address, json_object, now, required_post_key
from moderation.web.screening import screening

bp = Blueprint("api", __name__, url_prefix="/api/v1")

RECEIVED = "Thank you. Your comment will be published once a moderator has approved it."


def public_comment(comment: Comment) -> dict[str, Any]:
    """A comment as anyone may see it: never an email address or client data."""
    return {
        "id": comment.public_id,
        "parent_id": comment.parent.public_id if comment.parent else None,
        "author_name": comment.author_name,
        "body_html": comment.body_html,
        "official": comment.official,
        "submitted_at": rfc3339(comment.submitted_at),
    }


@bp.get("/sites/<site>/comments")
def list_comments(site: str) -> Response:
    session = get_session()
    found = comments.get_site(session, site)
    post = comments.find_post(session, found, required_post_key())
    if post is None:
        return jsonify({"comments": [], "next_cursor": None})
    page = comments.approved_comments(
        session,
        post,
        cursor=request.args.get("cursor"),
        limit=comments.page_limit(request.args.get("limit")),
    )
    return jsonify(
        {"comments": [public_comment(c) for c in page.comments], "next_cursor": page.next_cursor}
    )


@bp.post("/sites/<site>/comments")
def submit_comment(site: str) -> tuple[Response, int]:
    data = json_object()
    submission = parse_submission(data)
    screen = screening()
    screen.rate_limit(site, submission)
    evidence = screen.evidence(submission, data)
    session = get_session()
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
    session.commit()
    # A comment filed as spam looks like any other to its sender: bots learn nothing.
    status = "pending" if comment.status is CommentStatus.SPAM else comment.status.value
    return jsonify({"id": comment.public_id, "status": status, "message": RECEIVED}), 202


@bp.get("/sites/<site>/form-token")
def form_token(site: str) -> Response:
    """A signed token carrying the time the form was shown, for the time-trap check."""
    found = comments.get_site(get_session(), site)
    settings = screening().settings
    response = jsonify(
        {
            "form_token": screening().form_token(found.slug),
            "min_seconds": settings.time_trap_min_seconds,
            "expires_in": settings.time_trap_max_age_hours * 3600,
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/openapi.json")
def openapi() -> Response:
    spec = Path(current_app.static_folder or "", "openapi.json").read_bytes()
    return Response(spec, mimetype="application/json")


@bp.after_request
def allow_site_origins(response: Response) -> Response:
    """CORS for the site's own origins only; everyone else gets no CORS headers at all."""
    slug = (request.view_args or {}).get("site")
    origin = request.headers.get("Origin")
    if slug is None or origin is None:
        return response
    response.vary.add("Origin")
    site = get_session().scalar(select(Site).where(Site.slug == slug))
    if site is not None and comments.origin_allowed(site, origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
    return response
