"""The webhook HTTP client, guarded against server-side request forgery.

The host is resolved once; every address it resolves to must be globally routable (or inside a
network the operator allowed), and the connection goes to the address that was checked, so a
second lookup cannot swap it (DNS rebinding). The request carries the URL's host name in its
``Host`` header and TLS SNI. ``http.client`` is used directly: it follows no redirects and reads
no proxy environment variables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
USER_AGENT = "moderation-webhooks/1"
# How much of a consumer's response is read and kept in the delivery log: enough for an error
# message, never a consumer's whole page. Not a setting: no operator decision rests on it.
RESPONSE_CAP_BYTES = 4096


class Refused(Exception):
    """A destination the guard will not connect to; ``reason`` says why, for the log."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclasses.dataclass(frozen=True)
class Policy:
    """What the guard allows and how long a request may take."""

    allow_http: bool = False
    allowed_networks: tuple[Network, ...] = ()
    connect_timeout: float = 15.0
    timeout: float = 15.0
    response_cap_bytes: int = RESPONSE_CAP_BYTES


def parse_networks(raw: str) -> tuple[Network, ...]:
    """Networks from a comma-separated setting such as ``"127.0.0.0/8, ::1/128"``."""
    return tuple(ipaddress.ip_network(part.strip()) for part in raw.split(",") if part.strip())


@dataclasses.dataclass(frozen=True)
class Result:
    """The outcome of one attempt: a status code, or an error; never both missing."""

    status_code: int | None
    error: str | None
    excerpt: bytes
    duration_ms: int
    retry_after: float | None = None


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` is not globally routable, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: tuple[str, ipaddress.IPv4Address | None] | None = None
        if address.ipv4_mapped is not None:
            embedded = ("IPv4-mapped", address.ipv4_mapped)
        elif address in NAT64:
            embedded = ("NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        elif address in NAT64_LOCAL:
            return "local-use NAT64 address"
        elif address.sixtofour is not None:
            embedded = ("6to4", address.sixtofour)
        elif address.teredo is not None:
            return "Teredo address"
        if embedded is not None and embedded[1] is not None:
            inner = address_problem(embedded[1])
            if inner:
                return f"{embedded[0]} form of a {inner} address"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("CGNAT shared", isinstance(address, ipaddress.IPv4Address) and address in CGNAT),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
    )
    for name, hit in checks:
        if hit:
            return name
    if not address.is_global:
        return "not globally routable"
    return None


def check_address(address: IPAddress, policy: Policy) -> None:
    """Raise :class:`Refused` unless ``address`` is global or inside an allowed network."""
    if any(address.version == net.version and address in net for net in policy.allowed_networks):
        return
    problem = address_problem(address)
    if problem:
        raise Refused(f"{address} is a {problem} address")


_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")


def check_url(url: str, policy: Policy) -> urllib.parse.SplitResult:
    """Refuse URLs that are not http(s), carry credentials, or name a host in an odd form."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise Refused("the URL cannot be parsed") from None
    if parts.scheme not in ("https", "http"):
        raise Refused(f"scheme {parts.scheme or '(none)'!r} is not http or https")
    if parts.scheme == "http" and not policy.allow_http:
        raise Refused("plain http is not allowed (MODERATION_WEBHOOK_ALLOW_HTTP)")
    if parts.username is not None or parts.password is not None:
        raise Refused("credentials in the URL are not allowed")
    host = parts.hostname
    if not host:
        raise Refused("the URL has no host")
    if _NUMERIC_HOST.fullmatch(host) and any(c.isdigit() for c in host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            try:
                socket.inet_aton(host)
            except OSError:
                pass
            else:
                raise Refused(
                    f"host {host!r} is a decimal, octal or hex IPv4 form, not dotted decimal"
                ) from None
    return parts


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve_checked(host: str, port: int, policy: Policy, resolver: Resolver) -> str:
    """Resolve ``host`` once and return an address to connect to; all must pass the check."""
    addresses: list[IPAddress]
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = []
    if not addresses:
        try:
            found = list(dict.fromkeys(resolver(host, port)))
        except (OSError, UnicodeError) as error:
            raise Refused(f"host {host!r} does not resolve ({error})") from None
        if not found:
            raise Refused(f"host {host!r} does not resolve")
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    for address in addresses:
        try:
            check_address(address, policy)
        except Refused as refusal:
            raise Refused(f"host {host!r} resolves to {refusal.reason}") from None
    return str(addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a checked address while the Host header names the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As above, with TLS verified against the URL's host name (sent as SNI)."""

    def __init__(
        self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    policy: Policy,
    *,
    resolver: Resolver = system_resolver,
) -> Result:
    """POST ``body`` to ``url`` once; raises :class:`Refused` before any connection is made."""
    parts = check_url(url, policy)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve_checked(host, port, policy, resolver)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    started = time.monotonic()
    deadline = started + policy.timeout
    connect_timeout = min(policy.connect_timeout, policy.timeout)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = _PinnedHTTPSConnection(
            host, port, address, connect_timeout, ssl.create_default_context()
        )
    else:
        connection = _PinnedHTTPConnection(host, port, address, connect_timeout)

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("total timeout")
        return left

    # Socket timeouts bound each wait, not the whole exchange: a consumer that trickles a byte
    # at a time could hold a worker for ever. At the deadline the socket is shut down.
    watchdog: threading.Timer | None = None
    try:
        connection.connect()
        sock = connection.sock
        assert sock is not None
        watchdog = threading.Timer(remaining(), _shut, (sock,))
        watchdog.daemon = True
        watchdog.start()
        sock.settimeout(remaining())
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        )
        response = connection.getresponse()
        excerpt = b""
        while len(excerpt) < policy.response_cap_bytes:
            sock.settimeout(remaining())
            chunk = response.read1(policy.response_cap_bytes - len(excerpt))
            if not chunk:
                break
            excerpt += chunk
        remaining()  # the watchdog may have cut the body short
        retry_after = retry_after_seconds(response.getheader("Retry-After"), time.time())
        return Result(response.status, None, excerpt, elapsed_ms(), retry_after)
    except (http.client.HTTPException, OSError) as error:
        return Result(
            None,
            _failure(error, past_deadline=time.monotonic() >= deadline, elapsed_ms=elapsed_ms()),
            b"",
            elapsed_ms(),
        )
    finally:
        if watchdog is not None:
            watchdog.cancel()
        connection.close()


def _failure(error: Exception, *, past_deadline: bool, elapsed_ms: int) -> str:
    """What went wrong, in words for the delivery log."""
    if past_deadline or isinstance(error, TimeoutError):
        return f"timed out after {elapsed_ms} ms"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset by the consumer"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    return f"{type(error).__name__}: {error}"[:300]


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
