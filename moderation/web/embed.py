"""The embed: a server-rendered thread fragment with the comment form, its no-JS form post, the
standalone page for iframes, and the loader script ``/embed.js``.

Every read carries a strong ETag from the thread's version; a revalidation is answered with a 304
before any comment is loaded or template rendered (the version comes from memory while the
database is unchanged: publishing.ThreadHeads). Rendered bodies are kept in a small in-process
cache keyed by their ETag, which names the exact bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import escape
from sqlalchemy.exc import SQLAlchemyError

from moderation import comments, i18n, mail, posts, reports, verification
from moderation.comments import client_network
from moderation.errors import (
    Malformed,
    NotFound,
    ThreadClosed,
    UnsupportedMediaType,
    ValidationFailed,
)
from moderation.events import rfc3339
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
    "published",
)
# Strings embed.js needs, sent with the form so the script carries no catalogue of its own.
SCRIPT_MESSAGES = (
    "received",
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
# Sites whose origins a process remembers for its error pages during a database outage.
REMEMBERED_SITES = 1024
NO_FRAMING = "'none'"
# What a permalink's comment id (?comment=) may look like; anything else shows the first page.
COMMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
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


def _published() -> dt.datetime | None:
    """The post's publication date as the embed sent it (``?published=``, from the host page's
    ``data-published``); a value that is no date is refused, not echoed."""
    try:
        return posts.parse_published(request.args.get("published"))
    except ValueError:
        raise Malformed(
            "published is not a date.",
            fields={"published": "Give the post's publication date, like 2024-03-28"},
        ) from None


def window_notices(
    site: Site, post: Post | None, state: posts.PostState, lang: str
) -> tuple[str, str | None]:
    """What replaces a post's form when it takes no comments (the site's closed text, or when
    its window opens), and the window's closing time while it is open."""
    t = i18n.translator(lang)
    closed = site.closed_text or t("closed")
    if post is None:
        return closed, None
    if state is posts.PostState.NOT_YET_OPEN and post.opens_at is not None:
        when = i18n.local_date_time(post.opens_at, site.time_zone, lang)
        return t("opens_on", when=when), None
    if state is posts.PostState.OPEN and post.closes_at is not None:
        when = i18n.local_date_time(post.closes_at, site.time_zone, lang)
        return closed, t("closes_on", when=when)
    return closed, None


def frame_ancestors_for(site_origins: Sequence[str] | None) -> str:
    """The Content-Security-Policy of every response under /embed: no inline script, nothing
    from elsewhere, framed only by the site's own origins (``None``: the site is not known, so
    framed by nobody)."""
    listed = " ".join(str(o) for o in site_origins or ())
    form_action = f"'self' {listed}" if listed else "'self'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"form-action {form_action}; frame-ancestors {listed or NO_FRAMING}; "
        "object-src 'none'; base-uri 'none'"
    )


def known_origins() -> tuple[str, ...] | None:
    """The origins of the site the request names, or None when no site is known: no route
    matched, no such site, or the database cannot be asked. Read once per request (the public
    reads and a stored submission leave them in ``g``); the last ones read are kept in memory
    so that the error page of a database outage can still be framed by its own site."""
    if request.blueprint not in ("embed", "api"):
        return None
    slug = (request.view_args or {}).get("site")
    if not isinstance(slug, str):
        return None
    remembered: dict[str, tuple[str, ...]] = current_app.extensions.setdefault(
        "moderation.site_origins", {}
    )
    origins = g.get("site_origins")
    if origins is None:
        if g.get("database_unavailable"):
            return remembered.get(slug)
        try:
            origins = comments.get_site(get_session(), slug).origins
        except NotFound:
            return None
        except SQLAlchemyError as error:
            # The database went away after the view answered: keep its answer.
            log.error("site origins: database unavailable (%s)", type(error).__name__)
            return remembered.get(slug)
        g.site_origins = origins
    found = tuple(str(o) for o in origins)
    if remembered.get(slug) != found:
        if len(remembered) >= REMEMBERED_SITES:
            remembered.clear()
        remembered[slug] = found
    return found


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
    published: dt.datetime | None = None,
    comment: str | None = None,
) -> str:
    """The thread and the form for one post, as a fragment or a standalone page.

    ``framed``: whether a successful form post returns to the standalone page (the iframe mode)
    rather than to the blog's post (default: when standalone). ``comment``: a permalink's
    comment id; without a cursor, the page that shows it (the first for any other id).
    """
    framed = standalone if framed is None else framed
    session = get_session()
    post = comments.find_post(session, site, key)
    size = settings().embed_page_size
    if post is not None and cursor is None and comment and COMMENT_ID.fullmatch(comment):
        cursor = comments.cursor_for(session, post, comment, size)
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
    if published is not None:
        query["published"] = rfc3339(published)
    state = posts.thread_state(site, post, now(), published=published)
    closed_notice, closes_notice = window_notices(site, post, state, lang)
    page_url = url_for("embed.thread", site=site.slug, page="1", _external=True, **query)
    verifying = verification.site_verifies(session, site)
    messages = {name: t(name) for name in SCRIPT_MESSAGES}
    if verifying:
        # One answer whether or not the address was verified before (comments.sender_answer).
        messages["received"] = t("received_check_email")
        messages["reply_received"] = t("reply_received_check_email")
    messages.update({f"field_{k}": v for k, v in i18n.FIELD_ERRORS.get(lang, {}).items()})
    context: dict[str, Any] = {
        "site": site,
        "post": post,
        "post_key": key,
        "tree": comments.nest(shown),
        "count": count,
        "closed": state is not posts.PostState.OPEN,
        "closed_notice": closed_notice,
        "closes_notice": closes_notice,
        # Only a post that has none stored needs its publication date sent with the comment.
        "published_value": (
            query["published"] if "published" in query and not (post and post.published_at) else ""
        ),
        "values": values,
        "errors": _in_form_order(i18n.field_errors(lang, errors or {})),
        "skip_to_form": len(shown) >= SKIP_LINK_FROM,
        "reply_name": reply_name,
        "t": t,
        "lang": lang,
        "count_label": i18n.count_label(lang, count),
        "standalone": standalone,
        "verifying": verifying,
        "mail_on": mail.enabled(session),
        "max_body": MAX_BODY,
        "page_url": page_url,
        "more_url": (
            url_for("embed.thread", site=site.slug, cursor=page.next_cursor, **query)
            if page and page.next_cursor
            else None
        ),
        # A later page (a permalink's, or "Show more" without script) links back to the first.
        "first_url": (page_url if standalone or post is None else post.url) if cursor else None,
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
    published = _published()
    head = thread_head(site, key, published)
    if head is None:
        raise NotFound("There is no site with that name.")
    etag = strong_etag(
        "thread", request.host, head.site_id, head.site_state, head.stamp.version,
        head.stamp.state, variant(),
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
                values={"parent_id": reply} if reply else None, published=published,
                comment=request.args.get("comment", "")[:64],
            )  # fmt: skip
            pieces = _rendered().put(etag, html.encode(), token_slot=True)
        # The cached body is kept in pieces around the token's slot: a fresh token goes in
        # without decoding or searching the page.
        token = screening().form_token(site)
        body = token.encode().join(pieces)
        response = cacheable(Response(body, mimetype="text/html"), etag, revalidate=True)
    mark_replayable(etag, site, token, state=head, probe=thread_probe(site, key, published))
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
    published = values["published"] or request.args.get("published", "")
    session = get_session()
    try:
        submission = parse_submission(
            {**values, "post": key, "lang": _lang(), "published": published}
        )
        comment = screen_and_submit(site, submission, request.form)
    except (ValidationFailed, ThreadClosed) as error:
        session.rollback()
        found = comments.get_site(session, site)
        page = render_thread(
            found, key, standalone=True, values=values, errors=error.fields, lang=_lang(),
            framed=standalone, published=_published_or_none(published),
        )  # fmt: skip
        sent_token = request.form.get(FORM_TOKEN_FIELD, "")[:500]
        response = Response(fill_form_token(page, found.slug, sent_token), status=error.status)
        response.headers["Cache-Control"] = "no-store"
        g.site_origins = found.origins  # for the policy and CORS hooks
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


def _published_or_none(raw: str) -> dt.datetime | None:
    try:
        return posts.parse_published(raw)
    except ValueError:
        return None


@bp.after_app_request
def embed_policy(response: Response) -> Response:
    """Every response under /embed carries the policy, whatever answered: the fragment, the
    standalone page, the form post and every error page (those of paths no route matches too)."""
    if request.path == "/embed" or request.path.startswith("/embed/"):
        response.headers["Content-Security-Policy"] = frame_ancestors_for(known_origins())
    return response


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
    return response


@bp.get("/<site>/comments/<comment_id>/report")
def report_form(site: str, comment_id: str) -> Response:
    """A published comment's report form (no script needed); a closed post's answers 403."""
    comment = reports.published_comment(get_session(), site, comment_id)
    if comments.is_closed(comment.post, now()):
        raise ThreadClosed()
    return render_report(comment, lang=_lang(), framed=request.args.get("page") == "1")


@bp.post("/<site>/comments/<comment_id>/report")
@reads_first
def report_submit(site: str, comment_id: str) -> ResponseReturnValue:
    """The report form's post: back to the post (or the iframe's page) with a notice that says
    the same whatever the report changed; the form again with errors if it needs correcting."""
    if request.mimetype not in FORM_TYPES:
        raise UnsupportedMediaType("Send the form as application/x-www-form-urlencoded.")
    values = {name: request.form.get(name, "") for name in ("reason", "detail")}
    framed = request.args.get("page") == "1"
    session = get_session()
    # As the form's page: a comment that is not published is no comment here, so the answer
    # never tells whether a hidden one exists (nor where its post is).
    comment = reports.published_comment(session, site, comment_id)
    try:
        submission = reports.parse_report(values)
    except ValidationFailed as error:
        kept = {"reason": values["reason"][:20], "detail": values["detail"][: reports.MAX_DETAIL]}
        return render_report(
            comment, lang=_lang(), framed=framed, values=kept, errors=error.fields, status=422
        )
    screening().rate_limit_report(site)
    reported = reports.report_comment(
        session, site, comment_id, submission, now=now(),
        network=client_network(client_address()), origin=foreign_origin(),
    )  # fmt: skip
    post: Post = (reported or comment).post
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
    origins = known_origins()
    if origins is None:
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
