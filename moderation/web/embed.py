"""The embed: a server-rendered thread fragment with the comment form, its no-JS form post, the
standalone page for iframes, and the loader script ``/embed.js``.

Every read carries a strong ETag from the thread's version; a revalidation is answered with a 304
before any comment is loaded or template rendered (the version comes from memory while the
database is unchanged: publishing.ThreadHeads). Rendered bodies are kept in a small in-process
cache keyed by their ETag, which names the exact bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import escape
from sqlalchemy.exc import SQLAlchemyError

from moderation import comments, i18n, mail, reports, verification
from moderation.comments import client_network
from moderation.errors import (
    NotFound,
    ThreadClosed,
    UnsupportedMediaType,
    ValidationFailed,
)
from moderation.models import Comment, Post, ReportReason, Site
from moderation.spam import FORM_TOKEN_FIELD, HONEYPOT_FIELD, form_token_shaped
from moderation.validation import MAX_BODY, parse_submission
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
    now,
    required_post_key,
    settings,
)
from moderation.web.replay import mark_replayable
from moderation.web.screening import screen_and_submit, screening
from moderation.web.sessions import get_session, reads_first

log = logging.getLogger(__name__)
bp = Blueprint("embed", __name__, url_prefix="/embed")
loader = Blueprint("embed_loader", __name__)

# What the no-JavaScript form may be posted as.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
FORM_FIELDS = (
    "post_title",
    "post_url",
    "author_name",
    "author_email",
    "body",
    "parent_id",
    "notify",
    "notify_replies",
)
# Strings embed.js needs, sent with the form so the script carries no catalogue of its own.
SCRIPT_MESSAGES = (
    "received",
    "received_check_email",
    "failed",
    "sending",
    "characters_left",
    "characters_over",
    "error_summary_title",
    "error_prefix",
    "replying_to",
    "cancel_reply",
    "load_failed",
    "error_count_1",
    "error_count_n",
    "wait_seconds",
    "wait_minutes",
    "reply_received",
)
# The form's fields in the order a reader meets them: the error summary lists them so.
FIELD_ORDER = ("author_name", "author_email", "body")
# From this many comments on the page, a link at the top skips to the form.
SKIP_LINK_FROM = 5
RENDERED_CACHE_SIZE = 256
# Where a rendered form's time-trap token goes; random per process, so no comment can contain it.
FORM_TOKEN_SLOT = f"__form_token_{secrets.token_hex(16)}__"


def fill_form_token(html: str, site_slug: str, token: str | None = None) -> str:
    """Put a time-trap token into a rendered form: ``token`` (the one a commenter sent, when the
    form comes back with errors) if it has a token's exact shape, otherwise a freshly signed one
    (render time: now). Escaped all the same: the slot is inside an attribute value."""
    if not (token and form_token_shaped(site_slug, token)):
        token = screening().form_token(site_slug)
    return html.replace(FORM_TOKEN_SLOT, str(escape(token)))


class RenderedCache:
    """Rendered bodies by strong ETag, split where a form token goes (a body without a token
    slot is one piece); bounded, least recently used out first."""

    SLOT = FORM_TOKEN_SLOT.encode()

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[bytes, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, etag: str) -> tuple[bytes, ...] | None:
        with self._lock:
            pieces = self._items.get(etag)
            if pieces is not None:
                self._items.move_to_end(etag)
            return pieces

    def put(self, etag: str, body: bytes, *, token_slot: bool = False) -> tuple[bytes, ...]:
        pieces = tuple(body.split(self.SLOT)) if token_slot else (body,)
        with self._lock:
            self._items[etag] = pieces
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return pieces


def _lang() -> str:
    return i18n.language(request.args.get("lang"))


def frame_ancestors(site: Site) -> str:
    return frame_ancestors_for(tuple(site.origins))


def frame_ancestors_for(site_origins: object) -> str:
    """The iframe page's CSP: framed only by the site's own origins."""
    listed = " ".join(str(o) for o in site_origins) if isinstance(site_origins, tuple) else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"form-action 'self' {listed}; frame-ancestors {listed or chr(39) + 'none' + chr(39)}; "
        "object-src 'none'; base-uri 'none'"
    ).replace("  ", " ")


def _in_form_order(errors: dict[str, str]) -> dict[str, str]:
    """Field errors as the form orders its fields (Name, Email, Comment), others after."""
    rank = {name: i for i, name in enumerate(FIELD_ORDER)}
    return dict(sorted(errors.items(), key=lambda item: rank.get(item[0], len(rank))))


def render_thread(
    site: Site,
    key: str,
    *,
    standalone: bool,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    lang: str = i18n.DEFAULT_LANGUAGE,
    cursor: str | None = None,
    framed: bool | None = None,
) -> str:
    """The thread and the form for one post, as a fragment or a standalone page.

    ``framed``: whether a successful form post returns to the standalone page (the iframe mode)
    rather than to the blog's post (default: when standalone).
    """
    framed = standalone if framed is None else framed
    session = get_session()
    post = comments.find_post(session, site, key)
    size = settings().embed_page_size
    page = comments.approved_comments(session, post, cursor=cursor, limit=size) if post else None
    shown = list(page.comments) if page else []
    values = dict(values or {})
    reply_name = None
    if values.get("parent_id"):
        reply_name = next(
            (c.author_name for c in shown if c.public_id == values["parent_id"]), None
        )
    count = comments.count_approved(session, post) if post else 0
    t = i18n.translator(lang)
    query: dict[str, Any] = {"post": key}
    if lang != i18n.DEFAULT_LANGUAGE:
        query["lang"] = lang
    page_url = url_for("embed.thread", site=site.slug, page="1", _external=True, **query)
    messages = {name: t(name) for name in SCRIPT_MESSAGES}
    messages.update({f"field_{k}": v for k, v in i18n.FIELD_ERRORS.get(lang, {}).items()})
    context: dict[str, Any] = {
        "site": site,
        "post": post,
        "post_key": key,
        "tree": comments.nest(shown),
        "count": count,
        "closed": post is not None and comments.is_closed(post, now()),
        "values": values,
        "errors": _in_form_order(i18n.field_errors(lang, errors or {})),
        "skip_to_form": len(shown) >= SKIP_LINK_FROM,
        "reply_name": reply_name,
        "t": t,
        "lang": lang,
        "count_label": i18n.count_label(lang, count),
        "standalone": standalone,
        "verifying": verification.site_verifies(session, site),
        "mail_on": mail.enabled(session),
        "max_body": MAX_BODY,
        "page_url": page_url,
        "more_url": (
            url_for("embed.thread", site=site.slug, cursor=page.next_cursor, **query)
            if page and page.next_cursor
            else None
        ),
        "more_page_url": (
            url_for("embed.thread", site=site.slug, page="1", cursor=page.next_cursor, **query)
            if page and page.next_cursor
            else None
        ),
        "action": url_for(
            "embed.submit",
            site=site.slug,
            _external=True,
            **({"page": "1"} if framed else {}),
            **query,
        ),
        "api_url": url_for("api.submit_comment", site=site.slug, _external=True),
        # Each comment's "Report" link: this one with the comment's id in place of "-".
        "report_url": url_for(
            "embed.report_form",
            site=site.slug,
            comment_id="-",
            _external=True,
            **({"lang": lang} if lang != i18n.DEFAULT_LANGUAGE else {}),
            **({"page": "1"} if framed else {}),
        ),
        "script_messages": json.dumps(messages, ensure_ascii=False),
        "stylesheet": url_for("static", filename="embed.css", _external=True),
        "loader_script": url_for("embed_loader.embed_js", _external=True),
        # Rendered bodies are cached and shared, so the time-trap token is filled in per
        # response (fill_form_token), never baked into the cache.
        "form_token": FORM_TOKEN_SLOT,
        "honeypot_field": HONEYPOT_FIELD,
        "form_token_field": FORM_TOKEN_FIELD,
    }
    return render_template("embed/page.html" if standalone else "embed/thread.html", **context)


@bp.get("/<site>/thread")
def thread(site: str) -> Response:
    key = required_post_key()
    standalone = request.args.get("page") == "1"
    head = thread_head(site, key)
    if head is None:
        raise NotFound("There is no site with that name.")
    etag = strong_etag(
        "thread", request.host, head.site_id, head.site_state, head.stamp.version,
        head.stamp.closed, variant(),
    )  # fmt: skip
    response = not_modified(etag, revalidate=True)
    token = None
    if response is None:
        pieces = _rendered().get(etag)
        if pieces is None:
            found = comments.get_site(get_session(), site)
            reply = request.args.get("reply", "")[:64]
            html = render_thread(
                found, key, standalone=standalone, lang=_lang(), cursor=request.args.get("cursor"),
                values={"parent_id": reply} if reply else None,
            )  # fmt: skip
            pieces = _rendered().put(etag, html.encode(), token_slot=True)
        # The cached body is kept in pieces around the token's slot: a fresh token goes in
        # without decoding or searching the page.
        token = screening().form_token(site)
        body = token.encode().join(pieces)
        response = cacheable(Response(body, mimetype="text/html"), etag, revalidate=True)
    if standalone:
        response.headers["Content-Security-Policy"] = frame_ancestors_for(head.site_state[2])
    mark_replayable(etag, site, token, state=head, probe=thread_probe(site, key))
    return response


def _rendered() -> RenderedCache:
    cache: RenderedCache = current_app.extensions.setdefault(
        "moderation.rendered", RenderedCache(RENDERED_CACHE_SIZE)
    )
    return cache


def cached_body(etag: str, mimetype: str) -> Response | None:
    """The body rendered earlier for this exact ETag, if this process still holds it."""
    pieces = _rendered().get(etag)
    return None if pieces is None else cacheable(Response(pieces[0], mimetype=mimetype), etag)


def store_body(etag: str, body: bytes, mimetype: str) -> Response:
    _rendered().put(etag, body)
    return cacheable(Response(body, mimetype=mimetype), etag)


@bp.post("/<site>/thread")
@reads_first
def submit(site: str) -> ResponseReturnValue:
    if request.mimetype not in FORM_TYPES:
        raise UnsupportedMediaType("Send the form as application/x-www-form-urlencoded.")
    key = required_post_key()
    standalone = request.args.get("page") == "1"
    values = {name: request.form.get(name, "") for name in FORM_FIELDS}
    session = get_session()
    try:
        submission = parse_submission({**values, "post": key, "lang": _lang()})
        comment = screen_and_submit(site, submission, request.form)
    except (ValidationFailed, ThreadClosed) as error:
        session.rollback()
        found = comments.get_site(session, site)
        page = render_thread(
            found, key, standalone=True, values=values, errors=error.fields, lang=_lang(),
            framed=standalone,
        )  # fmt: skip
        sent_token = request.form.get(FORM_TOKEN_FIELD, "")[:500]
        response = Response(fill_form_token(page, found.slug, sent_token), status=error.status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = frame_ancestors(found)
        return response
    post: Post = comment.post
    parent = comment.parent.public_id if comment.parent else None
    session.commit()
    # A reply returns to the comment replied to, where its own notice shows (:target).
    anchor = f"#comment-{parent}-submitted" if parent else "#comment-submitted"
    # The iframe's page posts back to itself; a reader who reached the full page from the blog
    # (a Reply link, the error page, the snippet's link) goes back to the post. Browsers say
    # which with Sec-Fetch-Dest; without it, the page=1 form keeps returning to itself.
    top_level = request.headers.get("Sec-Fetch-Dest") == "document"
    if standalone and not top_level:
        back = url_for("embed.thread", site=site, post=key, page="1", lang=request.args.get("lang"))
        return redirect(f"{back}{anchor}", code=303)
    return redirect(f"{post.url}{anchor}", code=303)


def render_report(
    comment: Comment,
    *,
    lang: str,
    framed: bool,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The report form's page for a published comment (``framed``: it returns to the iframe's
    page rather than to the blog's post)."""
    site, post = comment.post.site, comment.post
    query: dict[str, Any] = {"lang": lang} if lang != i18n.DEFAULT_LANGUAGE else {}
    back = post.url
    if framed:
        back = url_for("embed.thread", site=site.slug, post=post.key, page="1", **query)
        query["page"] = "1"
    html = render_template(
        "embed/report.html",
        c=comment,
        site=site,
        post=post,
        t=i18n.translator(lang),
        lang=lang,
        reasons=[reason.value for reason in ReportReason],
        values=values or {},
        errors=i18n.field_errors(lang, errors or {}),
        max_detail=reports.MAX_DETAIL,
        back_url=back,
        action=url_for(
            "embed.report_submit",
            site=site.slug,
            comment_id=comment.public_id,
            _external=True,
            **query,
        ),
        stylesheet=url_for("static", filename="embed.css", _external=True),
        loader_script=url_for("embed_loader.embed_js", _external=True),
    )
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = frame_ancestors(site)
    return response


@bp.get("/<site>/comments/<comment_id>/report")
def report_form(site: str, comment_id: str) -> Response:
    """A published comment's report form (no script needed); a closed post's answers 403."""
    comment = reports.published_comment(get_session(), site, comment_id)
    if comments.is_closed(comment.post, now()):
        raise ThreadClosed()
    return render_report(comment, lang=_lang(), framed=request.args.get("page") == "1")


@bp.post("/<site>/comments/<comment_id>/report")
def report_submit(site: str, comment_id: str) -> ResponseReturnValue:
    """The report form's post: back to the post (or the iframe's page) with a notice that says
    the same whatever the report changed; the form again with errors if it needs correcting."""
    if request.mimetype not in FORM_TYPES:
        raise UnsupportedMediaType("Send the form as application/x-www-form-urlencoded.")
    values = {name: request.form.get(name, "") for name in ("reason", "detail")}
    framed = request.args.get("page") == "1"
    session = get_session()
    try:
        submission = reports.parse_report(values)
    except ValidationFailed as error:
        comment = reports.published_comment(session, site, comment_id)
        kept = {"reason": values["reason"][:20], "detail": values["detail"][: reports.MAX_DETAIL]}
        return render_report(
            comment, lang=_lang(), framed=framed, values=kept, errors=error.fields, status=422
        )
    screening().rate_limit_report(site)
    reported = reports.report_comment(
        session, site, comment_id, submission, now=now(),
        network=client_network(client_address()), origin=foreign_origin(),
    )  # fmt: skip
    if reported is None:
        raise NotFound("There is no published comment with that id.")
    post: Post = reported.post
    session.commit()
    # As after a comment: the iframe's page posts back to itself, a full page to the post.
    if framed and request.headers.get("Sec-Fetch-Dest") != "document":
        back = url_for(
            "embed.thread", site=site, post=post.key, page="1", lang=request.args.get("lang")
        )
        return redirect(f"{back}#comment-reported", code=303)
    return redirect(f"{post.url}#comment-reported", code=303)


@bp.after_request
def allow_site_origins(response: Response) -> Response:
    """embed.js fetches the fragment from the host page: CORS for the site's origins only."""
    return cors_for_site(response)


def cors_for_site(response: Response) -> Response:
    slug = (request.view_args or {}).get("site")
    if slug is None:
        return response
    vary = response.headers.get("Vary")
    response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
    origin = request.environ.get("HTTP_ORIGIN")
    if origin is None or g.get("database_unavailable"):
        return response  # without the database the site's origins are unknown: no CORS
    origins = g.get("site_origins")  # left by caching.thread_head on the public reads
    if origins is None:
        try:
            origins = comments.get_site(get_session(), slug).origins
        except NotFound:
            return response
        except SQLAlchemyError as error:
            # The database went away after the view answered: keep its answer, without CORS.
            log.error("CORS: database unavailable (%s)", type(error).__name__)
            return response
    if comments.origin_listed(origins, origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        # Retry-After: the embed tells a rate-limited commenter how long to wait.
        response.headers["Access-Control-Expose-Headers"] = "ETag, Retry-After"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
    return response


@loader.get("/embed.js")
def embed_js() -> Response:
    """The loader script; cached for an hour, revalidated by its ETag."""
    cached: tuple[bytes, str] | None = current_app.extensions.get("moderation.embed_js")
    if cached is None:
        body = Path(current_app.static_folder or "", "embed.js").read_bytes()
        cached = (body, strong_etag("embed.js", hashlib.sha256(body).hexdigest()))
        current_app.extensions["moderation.embed_js"] = cached
    body, etag = cached
    response = not_modified(etag) or Response(body, mimetype="text/javascript")
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "public, max-age=3600, stale-while-revalidate=86400"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
