"""Where webhooks may go: http(s) URLs only, and (the SSRF guard) no private, loopback,
link-local, multicast, reserved or unspecified address unless the deployment allows it.

:func:`check_url` runs when a subscription is created or changed; :func:`resolve` runs before
every send and returns the vetted IP address the sender connects to itself, so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot reach a refused address.
A host that resolves to several addresses is refused when any of them is refused.

``RAPPORT_WEBHOOK_ALLOW_PRIVATE=1`` turns the address check off; ``RAPPORT_WEBHOOK_ALLOWED_HOSTS``
lists hosts, IP addresses or CIDR networks that pass it anyway (a local test receiver,
an internal helpdesk).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from core.errors import InvalidInput

SCHEMES = {"http": 80, "https": 443}
MAX_URL = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(InvalidInput):
    """A webhook URL or the address it resolves to is not allowed (``field`` is ``url``)."""

    title = "Webhook target refused"


class Target(NamedTuple):
    """A vetted target: connect to ``ip``:``port``, send ``Host: host``, request ``path``."""

    host: str
    port: int
    ip: str
    scheme: str
    path: str


@dataclass(frozen=True)
class TargetPolicy:
    """``allow_private``: skip the address check; ``allowed``: hosts, IPs or CIDRs that pass it."""

    allow_private: bool = False
    allowed: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> TargetPolicy:
        allowed = tuple(part.strip() for part in str(config.webhook_allowed_hosts or "").split(","))
        return cls(bool(config.webhook_allow_private), tuple(a for a in allowed if a))

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in {
            a.lower().rstrip(".") for a in self.allowed if not _is_network(a)
        }

    def networks(self) -> list[IPNetwork]:
        return [ipaddress.ip_network(a, strict=False) for a in self.allowed if _is_network(a)]

    def address_allowed(self, ip: IPAddress) -> bool:
        if self.allow_private or not forbidden_address(ip):
            return True
        plain = _unmapped(ip)
        return any(plain in net or ip in net for net in self.networks())


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _unmapped(ip: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped (``::ffff:a.b.c.d``) or NAT64 IPv6 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _flags_forbidden(address: IPAddress) -> bool:
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def forbidden_address(ip: IPAddress) -> bool:
    """True for an address a webhook must not reach without being allowed explicitly. An IPv6
    address that carries an IPv4 one (mapped, NAT64, 6to4) is judged by the IPv4 address."""
    plain = _unmapped(ip)
    if plain is not ip:
        return _flags_forbidden(plain)
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        if _flags_forbidden(ip.sixtofour):
            return True
    return _flags_forbidden(ip)


def _split(url: Any, error: type[InvalidInput]) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of a well-formed http(s) URL, else ``error``."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise error(f"a URL of at most {MAX_URL} characters is required", field="url")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise error("the URL holds whitespace or control characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise error(f"the URL is malformed: {exc}", field="url") from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise error("only http and https URLs are allowed", field="url")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise error("the URL must not carry a user name or password", field="url")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise error("the URL has no host", field="url")
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise error("the URL's host is not a valid name", field="url") from exc
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port or SCHEMES[scheme], path


def _addresses(host: str, port: int, error: type[InvalidInput]) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise error(f"the host {host!r} does not resolve", field="url") from exc
    found: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise error(f"the host {host!r} does not resolve", field="url")
    return found


def _vet(url: Any, policy: TargetPolicy, error: type[InvalidInput]) -> Target:
    scheme, host, port, path = _split(url, error)
    addresses = _addresses(host, port, error)
    if not policy.host_allowed(host):
        for ip in addresses:
            if not policy.address_allowed(ip):
                raise error(
                    f"{host} resolves to {ip}, a private, loopback, link-local or reserved "
                    "address (RAPPORT_WEBHOOK_ALLOWED_HOSTS can allow it)",
                    field="url",
                )
    return Target(host, port, str(addresses[0]), scheme, path)


def check_url(url: Any, policy: TargetPolicy) -> None:
    """Refuse (``InvalidInput``, field ``url``) a URL a subscription must not have."""
    _vet(url, policy, InvalidInput)


def resolve(url: str, policy: TargetPolicy) -> Target:
    """The vetted target of ``url`` for one send (DNS looked up again); :class:`TargetRefused`."""
    return _vet(url, policy, TargetRefused)
