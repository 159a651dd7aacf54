"""Does the author's email domain accept mail? email-validator's DNS check, bounded in time.

The lookup runs in a worker thread and the caller waits at most ``bound`` seconds: a slow or
silent nameserver makes the answer "unknown", which never blocks a comment. Only a definite
answer (NXDOMAIN, a null MX, no MX and no usable address) says the domain takes no mail.
"""

from __future__ import annotations

import concurrent.futures
import logging

import dns.resolver
from email_validator import EmailUndeliverableError
from email_validator.deliverability import validate_email_deliverability

from moderation.spam import MailDomain

logger = logging.getLogger(__name__)


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
    except EmailUndeliverableError:
        return MailDomain.NO_MAIL
    except Exception:  # a lookup that fails for any other reason must never block a comment
        logger.warning("deliverability lookup failed", exc_info=True)
        return MailDomain.UNKNOWN
    if "unknown-deliverability" in info:
        return MailDomain.UNKNOWN
    return MailDomain.ACCEPTS


class DeliverabilityChecker:
    """Runs lookups on a small thread pool so a request waits no longer than ``bound``."""

    def __init__(self, resolver: dns.resolver.Resolver, *, bound: float, workers: int = 4):
        self.resolver = resolver
        self.bound = bound
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, "deliverability")

    def check(self, domain: str) -> MailDomain:
        future = self.pool.submit(lookup, domain, self.resolver)
        try:
            return future.result(timeout=self.bound)
        except concurrent.futures.TimeoutError:
            logger.info("deliverability lookup took longer than %.1f s", self.bound)
            return MailDomain.UNKNOWN

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
