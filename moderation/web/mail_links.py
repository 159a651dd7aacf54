"""The pages behind the links in mail: confirm an address, moderate a comment, unsubscribe.

A GET only shows what the link would do, with a button; only the button's POST acts, so a mail
scanner that opens every link changes nothing. The signed token in the URL is the credential;
a forged, expired or used one gets the error page with its status (400, 403, 410). A commenter's
pages, error pages included, are in the language of their comment; a moderator's are English.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from moderation import i18n, verification
from moderation.mail import link_actions, links
from moderation.models import Comment, CommentStatus
from moderation.web.context import now
from moderation.web.sessions import get_session

bp = Blueprint("mail_links", __name__, url_prefix="/mail")


def _secret() -> str:
    secret: str = current_app.config["SECRET_KEY"]
    return secret


# A commenter's links, by the view that opens them: their pages are in the comment's language.
COMMENTER_LINKS = {
    "mail_links.confirm_page": links.CONFIRM,
    "mail_links.confirm": links.CONFIRM,
    "mail_links.unsubscribe_page": links.UNSUBSCRIBE,
    "mail_links.unsubscribe": links.UNSUBSCRIBE,
}


@bp.before_request
def link_language() -> None:
    """The language of the comment a commenter's link is for, for its page and its error page:
    the link need only be genuine (an expired or used one too). A forged link, and a
    moderator's, get English."""
    purpose = COMMENTER_LINKS.get(request.endpoint or "")
    if purpose is None:
        return
    payload = links.genuine_payload(_secret(), purpose, str((request.view_args or {})["token"]))
    lang = None
    if payload is not None:
        public_id = str(payload.get("c"))
        lang = get_session().scalar(select(Comment.lang).where(Comment.public_id == public_id))
    g.commenter_lang = i18n.language(lang)


def _page(**context: object) -> ResponseReturnValue:
    lang = g.get("commenter_lang", i18n.DEFAULT_LANGUAGE)
    page = render_template(
        "mail_pages/link.html", page_lang=lang, t=i18n.translator(lang), **context
    )
    response = current_app.make_response(page)
    response.headers["Cache-Control"] = "no-store"
    # The token is a credential: keep it out of Referer headers.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> ResponseReturnValue:
    comment = verification.peek_confirmation(get_session(), token, secret=_secret(), now=now())
    return _page(kind="confirm", comment=comment, done=False)


@bp.post("/confirm/<token>")
def confirm(token: str) -> ResponseReturnValue:
    session = get_session()
    comment = verification.confirm_comment(session, token, secret=_secret(), now=now())
    session.commit()
    published = comment.status is CommentStatus.APPROVED
    return _page(kind="confirm", comment=comment, done=True, published=published)


@bp.get("/act/<token>")
def act_page(token: str) -> ResponseReturnValue:
    checked = link_actions.check_action(get_session(), token, secret=_secret(), now=now())
    return _page(kind="act", comment=checked.comment, action=checked.action, done=False)


@bp.post("/act/<token>")
def act(token: str) -> ResponseReturnValue:
    session = get_session()
    reason = request.form.get("reason") or None
    comment = link_actions.act(session, token, secret=_secret(), now=now(), reason=reason)
    session.commit()
    return _page(kind="act", comment=comment, done=True)


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> ResponseReturnValue:
    link_actions.check_unsubscribe(token, secret=_secret(), now=now())
    return _page(kind="unsubscribe", done=False)


@bp.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> ResponseReturnValue:
    """One click (RFC 8058): a mail program POSTs ``List-Unsubscribe=One-Click`` here."""
    session = get_session()
    link_actions.unsubscribe(session, token, secret=_secret(), now=now())
    session.commit()
    return _page(kind="unsubscribe", done=True)
