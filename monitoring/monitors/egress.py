"""The channels' outbound HTTP (Slack, webhook): a request a project admin aims, made by the server,
so it may reach only addresses on the internet unless the operator allows more (issue 22, SSRF).

    refusal(url) -> str                   why `url` may not be a channel's ('' when it may)
    post(url, body, headers, timeout)     POST once; raises Refused or Failed

The rule is judged on the address actually connected to: the host is resolved once, every address
it resolves to is judged, and the connection goes to the first of them, with the URL's host name
kept in the Host header, the TLS SNI and the certificate check (urllib3's documented custom-SNI
use). So every spelling of an address (`127.1`, `2130706433`, `0x7f000001`, `[::ffff:127.0.0.1]`,
`0.0.0.0`) and every name that resolves inside is refused alike, and DNS cannot answer one address
when checked and another when connected. Redirects are never followed (a 3xx is a failure): a
redirect would be a request to an address nobody judged. HTTP(S)_PROXY is not used: a proxy would
resolve the name itself.

Refused by default (Python's `ipaddress` categories, RFC 6890's special-purpose registries):
loopback, private (RFC 1918, 100.64/10 shared, ULA fc00::/7, documentation, benchmarking),
link-local (169.254/16, fe80::/10), multicast, unspecified (0.0.0.0, ::), reserved (240/4, ::/8),
anything else not globally reachable, and the IPv4 inside an IPv4-mapped (::ffff:0:0/96) or 6to4
(2002::/16) address. `settings.MONITOR_CHANNEL_ALLOWED_NETWORKS` lists networks (CIDR) whose
addresses are allowed, and host names allowed to resolve anywhere.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.utils.translation import gettext as _

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The URL may not be requested: not http(s), or an address inside (the message says which)."""


class Failed(Exception):
    """The request was made and failed: unreachable, TLS, timeout, or an HTTP status >= 300."""


@dataclass(frozen=True)
class Target:
    scheme: str  # "http" or "https"
    host: str  # the URL's host as DNS and TLS know it (IDNA, lowercase; an IPv6 literal without [])
    port: int
    path: str  # path and query, what the request line carries
    host_header: str  # "host[:port]" as the URL wrote it


def parse(url: str) -> Target:
    """The parts of an http(s) URL that a request needs; raises Refused. Schemes are
    case-insensitive (RFC 3986 §3.1); surrounding white space is dropped."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # an unclosed [IPv6 literal
        raise Refused(_("the channel's URL has an invalid host or port")) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise Refused(_("the channel's URL is not http(s)"))
    try:
        host = parts.hostname.encode("idna").decode("ascii") if not parts.hostname.isascii() else parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
    except (UnicodeError, ValueError):
        raise Refused(_("the channel's URL has an invalid host or port")) from None
    shown = f"[{host}]" if ":" in host else host
    host_header = f"{shown}:{parts.port}" if parts.port else shown
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, host, port, path, host_header)


def _allowed() -> tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], set[str]]:
    networks, hosts = [], set()
    for item in settings.MONITOR_CHANNEL_ALLOWED_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower().rstrip("."))
    return networks, hosts


def _embedded(address: Address) -> list[Address]:
    """What connecting to `address` reaches: an IPv4-mapped address is its IPv4 (a dual-stack
    socket connects there); a 6to4 address is judged and so is the IPv4 inside it."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return [address.ipv4_mapped]
        if address.sixtofour is not None:
            return [address, address.sixtofour]
    return [address]


def category(address: Address) -> str:
    """Why an address is inside ('loopback', 'private', ...), or '' for an address on the internet."""
    for each in _embedded(address):
        for name, inside in (
            ("unspecified", each.is_unspecified),
            ("loopback", each.is_loopback),
            ("link-local", each.is_link_local),
            ("multicast", each.is_multicast),  # is_global is true of global multicast: asked first
            ("private", each.is_private),
            ("reserved", each.is_reserved),
            ("not global", not each.is_global),
        ):
            if inside:
                return name
    return ""


def _judge(target: Target, address: Address) -> str:
    """Why the connection to `address` for `target` is refused, '' when it is allowed."""
    inside = category(address)
    if not inside:
        return ""
    networks, hosts = _allowed()
    if target.host.lower().rstrip(".") in hosts:
        return ""
    if any(each in network for each in _embedded(address) for network in networks if each.version == network.version):
        return ""
    return _(
        "refused: %(host)s → %(address)s is an internal address (%(category)s), not in MONITOR_CHANNEL_ALLOWED_NETWORKS"
    ) % {"host": target.host, "address": address, "category": inside}


def _addresses(target: Target) -> list[Address]:
    """Every address the host resolves to (a literal address, in any spelling, is itself); raises
    socket.gaierror when it resolves to none."""
    found: list[Address] = []
    for *_rest, sockaddr in socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # no IPv6 zone index
        if address not in found:
            found.append(address)
    return found


def refusal(url: str) -> str:
    """Why `url` may not be a channel's URL, '' when it may: not http(s), or a host whose address
    (any of them) is inside and not allowed. Worded for the person who typed it: the address a name
    resolves to is not echoed (internal DNS is not theirs to read). A host name that does not resolve
    now passes, as DNS may answer later: `post` judges again when it sends."""
    try:
        target = parse(url)
        addresses = _addresses(target)
    except Refused as exc:
        return str(exc)
    except (OSError, UnicodeError):
        return ""
    if any(_judge(target, address) for address in addresses):
        return _(
            "This URL leads to an internal address (loopback, private network, link-local, …), which "
            "channels may not reach. The portal's operator can allow it (MONITOR_CHANNEL_ALLOWED_NETWORKS)."
        )
    return ""


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    """POST `body` to `url` once, on the rule above. Raises Refused (not sent) or Failed (sent, or
    tried, and not taken: a status >= 300, redirects included). `timeout` in seconds, for the
    connection and for each read."""
    target = parse(url)
    try:
        addresses = _addresses(target)
    except (OSError, UnicodeError) as exc:
        raise Failed(
            _("unreachable: %(host)s does not resolve (%(error)s)") % {"host": target.host, "error": exc}
        ) from None
    for address in addresses:  # every answer judged: a name is not half inside
        reason = _judge(target, address)
        if reason:
            raise Refused(reason)
    connected_to = str(addresses[0])
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        # Connect to the judged address; TLS speaks and checks the certificate for the name.
        pool = urllib3.HTTPSConnectionPool(
            connected_to, target.port, server_hostname=target.host, assert_hostname=target.host, maxsize=1
        )
    else:
        pool = urllib3.HTTPConnectionPool(connected_to, target.port, maxsize=1)
    try:
        with pool:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers={"Host": target.host_header, **headers},
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                preload_content=False,
            )
            try:
                response.read(1000)
            finally:
                response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise Failed(_("unreachable: %(error)s") % {"error": exc}) from None
    if response.status >= 300:
        reason = f"HTTP {response.status} {response.reason or ''}".strip()
        if 300 <= response.status < 400:
            reason = _("%(status)s: redirects are not followed") % {"status": reason}
        raise Failed(reason)
