"""The edge half of the spam checks: rate limits and the DNS lookup, before any transaction.

Rate limits are moving windows kept with ``limits`` (the library under Flask-Limiter; in memory
by default or in Redis via ``MODERATION_RATELIMIT_STORAGE_URL`` so several processes share them),
keyed by the client's network (/24, /48), the author's email and the post. Only submissions are
limited, by hand per key, so the Flask extension's hooks on every request (which evaluate route
limits we never declare) are not installed. The deliverability lookup is bounded in time and
made before the database is touched, so no transaction waits on the network.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from flask import Flask, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from moderation import comments, metrics, spam
from moderation.comments import client_network
from moderation.config import Settings
from moderation.deliverability import DeliverabilityChecker, make_resolver, site_canaries
from moderation.errors import NotFound, RateLimited
from moderation.models import Comment
from moderation.validation import CommentSubmission
from moderation.web.context import client_address, foreign_origin, now
from moderation.web.sessions import get_session

# Limit keys start with this, apart from any other user of the same Redis database (deployments
# that share a Redis server use a database each, in MODERATION_RATELIMIT_STORAGE_URL).
KEY_PREFIX = "moderation"
RATE_LIMITED = "You have sent several comments in a short time. Wait a little, then try again."
# Readers' reports, per client network: a constant, not a setting (one network's reports of one
# comment count once anyway; this bounds the writes and the audit it costs).
REPORT_LIMITS = "5/minute;30/hour"
REPORT_RATE_LIMITED = (
    "You have sent several reports in a short time. Wait a little, then try again."
)


# The longest name a site may have (sites.slug): a longer one in an address is no site's, and is
# never made into a limiter key (which would keep the hostile name for the window's length).
MAX_SITE_NAME = 64


def _known_shape(site: str) -> str:
    if len(site) > MAX_SITE_NAME:
        raise NotFound("There is no site with that name.")
    return site


class Screening:
    """Per-app spam machinery: the pipeline, the rate limiter and the deliverability checker."""

    def __init__(self, app: Flask, settings: Settings):
        self.settings = settings
        self.pipeline = spam.default_pipeline(
            secret=app.config["SECRET_KEY"],
            time_trap=settings.time_trap,
            time_trap_verdict=spam.Verdict(settings.time_trap_verdict),
            disposable=settings.check_disposable_email,
        )
        self.limiter = MovingWindowRateLimiter(storage_from_string(settings.ratelimit_storage_url))
        self.limits = {
            "network": parse_many(settings.ratelimit_network),
            "email": parse_many(settings.ratelimit_email),
            "post": parse_many(settings.ratelimit_post),
        }
        self.report_limits = parse_many(REPORT_LIMITS)
        self.deliverability: DeliverabilityChecker | None = None
        if settings.deliverability_enabled:
            timeout = settings.dns_timeout_ms / 1000
            self.deliverability = DeliverabilityChecker(
                make_resolver(settings.dns_nameserver or None, timeout=timeout),
                bound=timeout + 0.1,
            )

    def rate_limit(self, site: str, submission: CommentSubmission) -> None:
        """Count this submission against each key; raise the documented 429 when one is over."""
        if not self.settings.ratelimit_enabled:
            return
        site = _known_shape(site)
        keys = {
            "network": client_network(client_address()) or "unknown",
            "email": submission.author_email.casefold(),
            "post": submission.post,
        }
        limiter = self.limiter
        for kind, items in self.limits.items():
            for item in items:
                if not limiter.hit(item, *self._keys(site, kind, keys[kind])):
                    metrics.SUBMISSIONS.labels("rate_limited").inc()
                    raise RateLimited(
                        RATE_LIMITED, retry_after=self._retry_after(item, site, kind, keys[kind])
                    )

    def rate_limit_report(self, site: str) -> None:
        """Count a reader's report against their network; the documented 429 when over."""
        if not self.settings.ratelimit_enabled:
            return
        site = _known_shape(site)
        network = client_network(client_address()) or "unknown"
        for item in self.report_limits:
            keys = (KEY_PREFIX, "report", site, "network", network)
            if not self.limiter.hit(item, *keys):
                reset_at, _ = self.limiter.get_window_stats(item, *keys)
                error = RateLimited(
                    REPORT_RATE_LIMITED, retry_after=max(1, math.ceil(reset_at - time.time()))
                )
                error.message_key = "report_rate_limited"  # the reader's language on HTML pages
                raise error

    def _keys(self, site: str, kind: str, key: str) -> tuple[str, ...]:
        return (KEY_PREFIX, "submit", site, kind, key)

    def _retry_after(self, item: RateLimitItem, *keys: str) -> int:
        reset_at, _ = self.limiter.get_window_stats(item, *self._keys(*keys))
        return max(1, math.ceil(reset_at - time.time()))

    def evidence(
        self, submission: CommentSubmission, form: Mapping[str, object], site: str | None = None
    ) -> spam.Evidence:
        honeypot = form.get(spam.HONEYPOT_FIELD)
        token = form.get(spam.FORM_TOKEN_FIELD)
        mail_domain = spam.MailDomain.UNKNOWN
        if self.deliverability is not None:
            mail_domain = self.deliverability.check(
                spam.email_domain(submission.author_email), lambda: _site_canaries(site)
            )
        return spam.Evidence(
            client_address=client_address(),
            honeypot=honeypot if isinstance(honeypot, str) and honeypot.strip() else None,
            form_token=token if isinstance(token, str) else None,
            mail_domain=mail_domain,
        )

    def form_token(self, site: str) -> str:
        return spam.issue_form_token(current_app.config["SECRET_KEY"], site, now=now())


def _site_canaries(slug: str | None) -> tuple[str, ...]:
    """The site's own domains, which its resolver must resolve (none for an unknown site)."""
    if slug is None:
        return ()
    try:
        return site_canaries(comments.get_site(get_session(), slug).origins)
    except NotFound:
        return ()


def screening() -> Screening:
    result: Screening = current_app.extensions["moderation.screening"]
    return result


def register(app: Flask) -> None:
    app.extensions["moderation.screening"] = Screening(app, app.extensions["moderation.settings"])


def screen_and_submit(
    site: str, submission: CommentSubmission, fields: Mapping[str, object]
) -> Comment:
    """Rate-limit, gather the evidence, run the pipeline and add the comment (uncommitted).

    The one submission path of the JSON API and the no-JS form; ``fields`` is what was posted.
    """
    screen = screening()
    screen.rate_limit(site, submission)
    evidence = screen.evidence(submission, fields, site)
    comment = comments.submit_comment(
        get_session(),
        site,
        submission,
        now=now(),
        origin=foreign_origin(),
        client_address=client_address(),
        user_agent=request.user_agent.string,
        pipeline=screen.pipeline,
        evidence=evidence,
        secret=current_app.config["SECRET_KEY"],
    )
    g.site_origins = comment.post.site.origins  # for the CORS hook, before the commit expires it
    return comment
