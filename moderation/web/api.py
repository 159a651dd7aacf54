"""The public JSON API, keyed by site slug: read approved comments, submit new ones."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import Connection

from moderation import comments, i18n, publishing, reports, spam
from moderation.comments import client_network
from moderation.errors import Malformed, NotFound
from moderation.events import rfc3339
from moderation.models import Comment, Post, Site
from moderation.publishing import Probe
from moderation.validation import parse_submission
from moderation.web.caching import (
    cacheable,
    not_modified,
    strong_etag,
    thread_head,
    thread_probe,
    variant,
)
from moderation.web.context import (
    client_address,
    foreign_origin,
    json_object,
    now,
    required_post_key,
)
from moderation.web.embed import cached_body, cors_for_site, store_body
from moderation.web.replay import mark_replayable
from moderation.web.screening import screen_and_submit, screening
from moderation.web.sessions import get_session, reads_first

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def public_comment(comment: Comment) -> dict[str, Any]:
    """A comment as anyone may see it: never an email address or client data."""
    return {
        "id": comment.public_id,
        "parent_id": comment.parent.public_id if comment.parent else None,
        "author_name": comment.author_name,
        "body_html": comment.body_html,
        "official": comment.official,
        "pinned": comment.pinned_at is not None,
        "submitted_at": rfc3339(comment.submitted_at),
    }


@bp.get("/sites/<site>/comments")
def list_comments(site: str) -> Response:
    key = required_post_key()
    head = thread_head(site, key)
    if head is None:
        raise NotFound("There is no site with that name.")
    etag = strong_etag("comments", head.site_id, head.stamp.version, variant())
    mark_replayable(etag, site, state=head, probe=thread_probe(site, key))
    response = not_modified(etag) or cached_body(etag, "application/json")
    if response is not None:
        return response
    session = get_session()
    found = comments.get_site(session, site)
    post = comments.find_post(session, found, key)
    body: dict[str, Any] = {"comments": [], "next_cursor": None}
    if post is not None:
        page = comments.approved_comments(
            session,
            post,
            cursor=request.args.get("cursor"),
            limit=comments.page_limit(request.args.get("limit")),
        )
        body = {
            "comments": [public_comment(c) for c in page.comments],
            "next_cursor": page.next_cursor,
        }
    return store_body(etag, json.dumps(body, ensure_ascii=False).encode(), "application/json")


@bp.get("/sites/<site>/counts")
def counts(site: str) -> Response:
    """Approved comment counts for up to 100 posts: ``?post=A&post=B``.

    The answer is kept per version of the named posts: an unchanged set costs one indexed query
    of the posts (none when replayed), a revalidation gets a 304 without counting anything.
    """
    session = get_session()
    keys = request.args.getlist("post")
    if not keys or len(keys) > publishing.MAX_COUNT_POSTS:
        comments.get_site(session, site)  # an unknown site is a 404 first
        raise Malformed(
            f"Name from 1 to {publishing.MAX_COUNT_POSTS} posts with ?post=KEY&post=KEY.",
            fields={"post": f"Give 1 to {publishing.MAX_COUNT_POSTS} posts"},
        )
    stamp = publishing.counts_stamp(session.connection(), site, keys)
    if stamp is None:
        raise NotFound("There is no site with that name.")
    g.site_origins = stamp.origins  # for the CORS hook, so it loads nothing
    etag = strong_etag("counts", stamp.site_id, stamp.versions, variant())
    mark_replayable(etag, site, state=stamp, probe=counts_probe(site, keys))
    response = not_modified(etag) or cached_body(etag, "application/json")
    if response is not None:
        return response
    found = publishing.approved_counts(session, stamp.site_id, keys)
    return store_body(etag, json.dumps({"counts": found}).encode(), "application/json")


def counts_probe(slug: str, keys: Sequence[str]) -> Probe:
    """Reads the counts' stamp again, for the replay layer (see replay.Replayable)."""
    wanted = list(keys)

    def probe(connection: Connection, _at: dt.datetime) -> object:
        return publishing.counts_stamp(connection, slug, wanted)

    return probe


@bp.get("/sites/<site>/feed.atom")
def feed(site: str) -> Response:
    """An Atom feed of the newest approved comments of one post (``?post=KEY``) or the site."""
    session = get_session()
    found = comments.get_site(session, site)
    key = request.args.get("post")
    if key is not None:
        stamp: object = publishing.thread_stamp(session, found, key, now=now()).version
    else:
        stamp = publishing.site_stamp(session, found)
    etag = strong_etag("feed", request.host, found.id, found.name, stamp, variant())
    cached = not_modified(etag)
    if cached is not None:
        return cached
    post = comments.find_post(session, found, key) if key is not None else None
    if key is not None and post is None:
        raise NotFound("There is no post with that key.")
    entries = publishing.feed_comments(session, found, post)
    xml = atom_feed(found, post, entries, self_url=request.url)
    return cacheable(Response(xml, mimetype="application/atom+xml"), etag)


ATOM = "http://www.w3.org/2005/Atom"


def atom_feed(site: Site, post: Post | None, entries: Sequence[Comment], *, self_url: str) -> bytes:
    """Valid Atom 1.0 (RFC 4287): every text escaped by the XML serialiser, not by hand."""
    ET.register_namespace("", ATOM)

    def add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        element.text = text
        return element

    root = ET.Element(f"{{{ATOM}}}feed")
    title = f"Comments on {post.title or post.key}" if post else f"Comments on {site.name}"
    add(root, "title", title)
    add(root, "id", self_url)
    add(root, "link", rel="self", href=self_url)
    if post is not None:
        add(root, "link", rel="alternate", href=post.url)
    newest = max((c.moderated_at or c.submitted_at for c in entries), default=None)
    updated = newest or (post.created_at if post else site.created_at)
    add(root, "updated", rfc3339(updated))
    author = add(root, "author")
    add(author, "name", site.name)
    for comment in entries:
        entry = add(root, "entry")
        add(entry, "id", f"{comment.post.url}#comment-{comment.public_id}")
        add(entry, "title", f"{comment.author_name} on {comment.post.title or comment.post.key}")
        add(entry, "link", rel="alternate", href=f"{comment.post.url}#comment-{comment.public_id}")
        add(entry, "published", rfc3339(comment.submitted_at))
        add(entry, "updated", rfc3339(comment.moderated_at or comment.submitted_at))
        entry_author = add(entry, "author")
        add(entry_author, "name", comment.author_name)
        add(entry, "content", comment.body_html, type="html")
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


@bp.post("/sites/<site>/comments")
@reads_first
def submit_comment(site: str) -> tuple[Response, int]:
    data = json_object()
    comment = screen_and_submit(site, parse_submission(data), data)
    get_session().commit()
    status, said = comments.sender_answer(get_session(), comment)
    # What the embed's form says, in the comment's language.
    message = i18n.translator(comment.lang)(said)
    return jsonify({"id": comment.public_id, "status": status.value, "message": message}), 202


@bp.post("/sites/<site>/comments/<comment_id>/reports")
@reads_first
def report_comment(site: str, comment_id: str) -> tuple[Response, int]:
    """A reader reports a published comment. The answer is the same whatever it changed: an
    unknown or unpublished comment, or a second report from one network, is "received" too."""
    submission = reports.parse_report(json_object())
    screening().rate_limit_report(site)
    session = get_session()
    reports.report_comment(
        session, site, comment_id, submission, now=now(),
        network=client_network(client_address()), origin=foreign_origin(),
    )  # fmt: skip
    session.commit()
    return jsonify({"status": "received"}), 202


@bp.get("/sites/<site>/form-token")
def form_token(site: str) -> Response:
    """A signed token carrying the time the form was shown, for the time-trap check."""
    found = comments.get_site(get_session(), site)
    response = jsonify(
        {
            "form_token": screening().form_token(found.slug),
            "min_seconds": spam.TIME_TRAP_MIN_SECONDS,
            "expires_in": int(spam.TIME_TRAP_MAX_AGE.total_seconds()),
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
    return cors_for_site(response)
