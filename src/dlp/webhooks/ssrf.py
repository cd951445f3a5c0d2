"""The SSRF guard: webhooks may only reach public http(s) addresses.

A webhook URL is the user's choice, but the platform makes the request from
inside its own network. Left unchecked, a URL could read the cloud metadata
service (169.254.169.254), the database, or anything else only the servers can
reach. ``check_webhook_url`` refuses such URLs by their text at submission;
``resolve_public_addresses`` refuses them again at delivery time by every
address their host name resolves to, and the caller then connects to one of
those checked addresses, so a DNS answer that changes between the two (DNS
rebinding) cannot slip through.

URLs are parsed with httpx, the client that delivers them, so the guard and the
request agree on which host a URL names.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

import httpx

from dlp.errors import ServiceUnavailableError, ValidationError

MAX_URL_LENGTH = 2000
ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
BLOCKED_HOST_NAMES = frozenset(
    {"localhost", "metadata", "metadata.google.internal", "metadata.goog", "instance-data"}
)
BLOCKED_HOST_SUFFIXES = (".localhost",)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # CGNAT, RFC 6598
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# inet_aton's legacy IPv4 spellings ("127.1", "0x7f000001", "2130706433"): the
# resolver accepts them, so the guard must read them as addresses, not names.
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+")


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL split into what delivery needs."""

    url: httpx.URL
    host: str
    """ASCII host: an IDNA name or an IP literal without brackets."""
    port: int


def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """Refuse a webhook URL that is malformed or names a non-public host (no DNS lookup)."""
    parse_webhook_url(url, allow_private=allow_private)


def parse_webhook_url(url: str, *, allow_private: bool) -> WebhookTarget:
    """Check a webhook URL as ``check_webhook_url`` does and return its parts."""
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"webhook_url is longer than {MAX_URL_LENGTH} characters")
    if any(char.isspace() or not char.isprintable() for char in url):
        raise ValidationError("webhook_url must not contain spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValidationError(f"webhook_url is not a valid URL: {exc}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        shown = f"'{parsed.scheme}'" if parsed.scheme else "no scheme"
        raise ValidationError(f"webhook_url must be an http or https URL, not {shown}")
    if parsed.userinfo:
        raise ValidationError("webhook_url must not contain credentials (user:password@)")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise ValidationError("webhook_url must name a host")
    check_host(host, allow_private=allow_private)
    return WebhookTarget(url=parsed, host=host, port=parsed.port or DEFAULT_PORTS[parsed.scheme])


def check_host(host: str, *, allow_private: bool) -> None:
    """Refuse a host (IP literal or name) that is not public, without resolving it."""
    address = parse_ip_literal(host)
    if address is None:
        name = host.lower().removesuffix(".")
        if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
            raise ValidationError(f"webhook_url has an invalid host name {host!r}")
        if allow_private:
            return
        if name in BLOCKED_HOST_NAMES or name.endswith(BLOCKED_HOST_SUFFIXES):
            raise ValidationError(
                f"webhook_url host {host!r} is a local or cloud-metadata name; "
                "webhooks must reach a public address"
            )
        return
    reason = blocked_address_reason(address)
    if reason is not None and not allow_private:
        raise ValidationError(
            f"webhook_url host {host!r} is a {reason} address; webhooks must reach a public address"
        )


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address an IP-literal host names (legacy IPv4 spellings too), else None."""
    candidate = host.removeprefix("[").removesuffix("]")
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(candidate.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(candidate))
        except OSError:
            return None
    return None


def blocked_address_reason(address: IPAddress) -> str | None:
    """Why a webhook may not reach ``address`` ("loopback", "private", ...), None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            # The packets go to the embedded IPv4 address: judge that one.
            reason = blocked_address_reason(embedded)
            return None if reason is None else f"{reason} (IPv4 inside IPv6)"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE:
        return "shared (CGNAT)"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def resolve_public_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Resolve ``host`` and return its addresses, refusing it if ANY of them is not public.

    Raises ``ValidationError`` for a refused host (permanent) and
    ``ServiceUnavailableError`` when the name does not resolve (worth retrying).
    Connect to one of the returned addresses; a second lookup could answer differently.
    """
    host = host.removeprefix("[").removesuffix("]")
    check_host(host, allow_private=allow_private)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise ServiceUnavailableError(f"could not resolve webhook host {host!r}: {exc}") from exc
    addresses: list[str] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    if not addresses:
        raise ServiceUnavailableError(f"webhook host {host!r} has no IP address")
    if not allow_private:
        for text in addresses:
            reason = blocked_address_reason(ipaddress.ip_address(text))
            if reason is not None:
                raise ValidationError(
                    f"webhook host {host!r} resolves to a {reason} address ({text}); "
                    "webhooks must reach a public address"
                )
    return addresses
