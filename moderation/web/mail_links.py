"""The pages behind the links in mail: confirm an address, moderate a comment, unsubscribe.

A GET only shows what the link would do, with a button; only the button's POST acts, so a mail
scanner that opens every link changes nothing. The signed token in the URL is the credential;
a forged, expired or used one gets the error page with its status (400, 403, 410).
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue

from moderation import i18n, verification
from moderation.db import get_session
from moderation.mail import link_actions
from moderation.models import CommentStatus
from moderation.web.context import now

bp = Blueprint("mail_links", __name__, url_prefix="/mail")


def _secret() -> str:
    secret: str = current_app.config["SECRET_KEY"]
    return secret


def _page(lang: str = i18n.DEFAULT_LANGUAGE, **context: object) -> ResponseReturnValue:
    """The page, in the commenter's language for their own links (moderators' are English)."""
    lang = i18n.language(lang)
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
    return _page(comment.lang, kind="confirm", comment=comment, done=False)


@bp.post("/confirm/<token>")
def confirm(token: str) -> ResponseReturnValue:
    session = get_session()
    comment = verification.confirm_comment(session, token, secret=_secret(), now=now())
    session.commit()
    published = comment.status is CommentStatus.APPROVED
    return _page(comment.lang, kind="confirm", comment=comment, done=True, published=published)


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
    comment = link_actions.check_unsubscribe(get_session(), token, secret=_secret(), now=now())
    return _page(comment.lang if comment else i18n.DEFAULT_LANGUAGE, kind="unsubscribe", done=False)


@bp.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> ResponseReturnValue:
    """One click (RFC 8058): a mail program POSTs ``List-Unsubscribe=One-Click`` here."""
    session = get_session()
    comment = link_actions.unsubscribe(session, token, secret=_secret(), now=now())
    session.commit()
    return _page(comment.lang, kind="unsubscribe", done=True)
