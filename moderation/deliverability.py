"""Does the author's email domain accept mail? email-validator's DNS check, bounded in time.

The lookup runs in a worker thread and the caller waits at most ``bound`` seconds: a slow or
silent nameserver makes the answer "unknown", which never blocks a comment. Only a definite
answer (NXDOMAIN, a null MX, no MX and no usable address) says the domain takes no mail, and
only from a resolver known to work: one that gave a real answer lately, or that resolves its
canaries (names that must exist: the root zone's nameservers, the site's own domains). A
resolver that cannot (it answers NXDOMAIN or SERVFAIL for everything, or nothing at all) is
broken: every answer is "unknown" until it works again, so nobody is turned away because DNS is
down. The outage is logged once when it starts and once when it ends, and counted in a metric;
while it lasts lookups are skipped (no commenter waits for a dead resolver) and the canaries
are tried again every ``RECHECK_SECONDS``.
"""

from __future__ import annotations

import concurrent.futures
import copy
import ipaddress
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import dns.exception
import dns.resolver
from email_validator import EmailUndeliverableError
from email_validator.deliverability import validate_email_deliverability

from moderation import metrics
from moderation.spam import MailDomain

logger = logging.getLogger(__name__)
T = TypeVar("T")

# A real answer proves the resolver works for this long.
PROOF_SECONDS = 300.0
# While the resolver is broken, lookups are skipped and the canaries tried again this often.
RECHECK_SECONDS = 30.0
# The name every working resolver can answer for: the root zone's nameservers.
ROOT = "."
MAX_SITE_CANARIES = 3


def make_resolver(nameserver: str | None, *, timeout: float) -> dns.resolver.Resolver:
    """A resolver with a short lifetime; ``nameserver`` is ``host`` or ``host:port``."""
    if nameserver:
        resolver = dns.resolver.Resolver(configure=False)
        host, _, port = (
            nameserver.rpartition(":") if nameserver.count(":") == 1 else (nameserver, "", "")
        )
        resolver.nameservers = [host]
        if port:
            resolver.port = int(port)
    else:
        resolver = dns.resolver.Resolver()
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = dns.resolver.LRUCache()
    return resolver


def lookup(domain: str, resolver: dns.resolver.Resolver) -> MailDomain:
    try:
        info = validate_email_deliverability(domain, domain, dns_resolver=resolver)
    except EmailUndeliverableError as error:
        cause = error.__cause__
        if cause is None or isinstance(cause, (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer)):
            return MailDomain.NO_MAIL
        # email-validator turns any other failure into "undeliverable": not an answer.
        logger.warning("deliverability lookup failed (%s)", type(cause).__name__)
        return MailDomain.UNKNOWN
    except Exception:  # a lookup that fails for any other reason must never block a comment
        logger.warning("deliverability lookup failed", exc_info=True)
        return MailDomain.UNKNOWN
    if "unknown-deliverability" in info:
        return MailDomain.UNKNOWN
    return MailDomain.ACCEPTS


def site_canaries(origins: Iterable[str]) -> tuple[str, ...]:
    """The host names of a site's origins that must resolve: names, not addresses or localhost."""
    names: list[str] = []
    for origin in origins:
        try:
            host = urllib.parse.urlsplit(str(origin)).hostname
        except ValueError:
            continue
        if not host or "." not in host or host.endswith((".localhost", ".test", ".invalid")):
            continue
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names.append(host)
    return tuple(dict.fromkeys(names))[:MAX_SITE_CANARIES]


def resolves(name: str, resolver: dns.resolver.Resolver) -> bool:
    """Whether the resolver gives a real answer for ``name``, a name that must exist: the root
    zone's nameservers, or a site's address (A or AAAA)."""
    qtypes = ("NS",) if name == ROOT else ("A", "AAAA")
    for qtype in qtypes:
        try:
            answer = resolver.resolve(name, qtype, search=False)
        except dns.resolver.NoAnswer:
            continue
        except (dns.exception.DNSException, OSError):  # NXDOMAIN, SERVFAIL, a timeout...
            return False
        if len(answer):
            return True
    return False


def resolver_works(resolver: dns.resolver.Resolver, canaries: Sequence[str]) -> bool:
    """Whether any canary resolves (the root first, then the site's domains)."""
    return any(resolves(name, resolver) for name in (ROOT, *canaries))


class DeliverabilityChecker:
    """Runs lookups on a small thread pool so a request waits no longer than ``bound``, and
    trusts a "takes no mail" answer only from a resolver known to work (see the module)."""

    def __init__(self, resolver: dns.resolver.Resolver, *, bound: float, workers: int = 4):
        self.resolver = resolver
        # The canaries are always asked afresh: a cached answer proves nothing about now.
        self.canary_resolver = copy.copy(resolver)
        self.canary_resolver.cache = None
        self.bound = bound
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, "deliverability")
        self._lock = threading.Lock()
        self._proven_at: float | None = None  # monotonic time of the last real answer
        self._broken_since: float | None = None
        self._recheck_at = 0.0

    @property
    def broken(self) -> bool:
        return self._broken_since is not None

    def check(self, domain: str, canaries: Callable[[], Sequence[str]] = tuple) -> MailDomain:
        """The domain's answer; ``canaries`` gives the site's own domains when the resolver has
        to show it works (called only then: it may read the database)."""
        started = time.monotonic()
        with self._lock:
            if self._broken_since is not None and started < self._recheck_at:
                metrics.RESOLVER_DOWN.inc()
                return MailDomain.UNKNOWN
            proven = self._proven_at is not None and started - self._proven_at < PROOF_SECONDS
        deadline = started + self.bound
        found = self.pool.submit(lookup, domain, self.resolver)
        probe = None
        if not proven:
            probe = self.pool.submit(resolver_works, self.canary_resolver, tuple(canaries()))
        verdict = self._wait(found, deadline, MailDomain.UNKNOWN)
        if verdict is MailDomain.ACCEPTS:
            self._works()
            return verdict
        if probe is None:
            if verdict is MailDomain.UNKNOWN:
                with self._lock:
                    self._proven_at = None  # no answer: the next lookup asks the canaries too
            return verdict
        if self._wait(probe, deadline, False):
            self._works()
            return verdict
        self._fails()
        return MailDomain.UNKNOWN

    def _wait(self, future: concurrent.futures.Future[T], deadline: float, default: T) -> T:
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            logger.debug("deliverability lookup took longer than %.1f s", self.bound)
            return default

    def _works(self) -> None:
        with self._lock:
            self._proven_at = time.monotonic()
            if self._broken_since is None:
                return
            lasted = self._proven_at - self._broken_since
            self._broken_since = None
        self._forget_answers()
        logger.warning(
            "DNS resolver answers again after %.0f s: email deliverability checks resume", lasted
        )

    def _fails(self) -> None:
        metrics.RESOLVER_DOWN.inc()
        with self._lock:
            now = time.monotonic()
            self._proven_at = None
            self._recheck_at = now + RECHECK_SECONDS
            if self._broken_since is not None:
                return
            self._broken_since = now
        self._forget_answers()
        logger.warning(
            "DNS resolver is not working (it cannot resolve names that must exist): every email"
            " address's deliverability is unknown, and none is refused for its domain, until it"
            " answers again (tried every %.0f s)",
            RECHECK_SECONDS,
        )

    def _forget_answers(self) -> None:
        """Drop cached answers when an outage starts or ends: a broken resolver's NXDOMAIN for
        a real domain must not outlive the outage."""
        cache = self.resolver.cache
        if cache is not None:
            cache.flush()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
