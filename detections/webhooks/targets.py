"""Where a webhook may be sent: the server-side request forgery rules.

A target is an http or https URL whose host resolves only to public addresses,
or to addresses inside WEBHOOK_ALLOWED_NETWORKS (a site's gate controller on
its LAN). Loopback, link-local (the cloud metadata service at 169.254.169.254
among them), private, unspecified, multicast and reserved addresses are
refused, also written in an IPv6 form that carries an IPv4 address: such an
address is checked as the IPv4 address it carries (`carried_ipv4`), since its
packets are translated or tunnelled to that address. A name is
resolved here, every address it resolves to must pass, and the delivery then
connects to the address that was checked, not to whatever the name resolves to
a moment later (a DNS rebinding attack); the URL's host still goes in the Host
header and, for https, in TLS's server name, so certificates are checked
against the name.

A URL that holds a space or a control character is refused rather than
cleaned: URL parsers drop tabs and line breaks (urlsplit does) or send them
on, so what was stored would not be what is delivered to.

The check runs when an endpoint is registered or its URL changed, and again
before every delivery attempt.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from vehicle_monitor.networks import Network, parse_networks

DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes whose last 32 bits are an IPv4 address: NAT64's well-known
# prefix (RFC 6052) and the deprecated IPv4-compatible form (::a.b.c.d).
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class RefusedTarget(ValueError):
    """The URL may not be a webhook target; the message says why."""


@dataclass(frozen=True)
class Target:
    url: str  # as registered
    host: str  # the URL's host name (or address) as written, lower case
    address: str  # the checked address the connection goes to

    @property
    def connect_url(self) -> str:
        """The URL with the checked address in place of the host."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))

    @property
    def host_header(self) -> str:
        parts = urlsplit(self.url)
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if parts.port in (None, DEFAULT_PORTS[parts.scheme]) else f"{name}:{parts.port}"

    @property
    def tls_server_name(self) -> str | None:
        """For https, TLS's server name (and the certificate's): the URL's host, not the address."""
        return self.host if urlsplit(self.url).scheme == "https" else None


def names_an_address(url: str) -> bool:
    """Whether the URL's host is an address rather than a name to look up."""
    try:
        ipaddress.ip_address((urlsplit(url.strip()).hostname or "").split("%", 1)[0])
    except ValueError:
        return False
    return True


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (a literal address: itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def check(url: str) -> Target:
    """The target of `url`, or RefusedTarget."""
    url = url.strip()
    if any(char.isspace() or not char.isprintable() for char in url):
        raise RefusedTarget(
            "The URL must not hold spaces or control characters (line breaks, tabs); percent-encode them (%20)."
        )
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise RefusedTarget("The URL must start with http:// or https://.")
    if parts.username is not None or parts.password is not None:
        raise RefusedTarget("The URL may not carry a user name or password; put a token in its path or query.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise RefusedTarget("The URL's port is not a number from 1 to 65535.")
    try:
        # Internationalised names as DNS and the Host header carry them.
        host = (parts.hostname or "").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise RefusedTarget("The URL's host is not a valid name.") from None
    if not host:
        raise RefusedTarget("The URL has no host.")
    port = port or DEFAULT_PORTS[parts.scheme]
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        raise RefusedTarget(f"The host {host} does not resolve.") from None
    if not addresses:
        raise RefusedTarget(f"The host {host} does not resolve.")
    checked = [_checked(host, address) for address in addresses]
    return Target(url=url, host=host, address=str(checked[0]))


def _checked(host: str, text: str) -> IPAddress:
    # A scope (fe80::1%eth0) names an interface, not an address.
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    allowed = allowed_networks()
    if any(address in network for network in allowed):
        return address
    for checked in carried_ipv4(address) or [address]:
        if any(checked in network for network in allowed):
            continue
        kind = refused_kind(checked)
        if kind:
            shown = host if host == str(address) else f"{host} ({address})"
            if checked != address:
                shown = f"{shown}, which carries {checked},"
            raise RefusedTarget(
                f"{shown} is not a public address ({kind}); webhooks go only to public addresses "
                "and to the networks WEBHOOK_ALLOWED_NETWORKS lists."
            )
    return address


def carried_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: 6to4 (2002::/16), Teredo
    (2001::/32: its server and its client), NAT64 (64:ff9b::/96) and
    IPv4-compatible (::a.b.c.d). IPv4-mapped addresses are taken for their
    IPv4 address before this (they are one address written two ways)."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    if address.sixtofour:
        return [address.sixtofour]
    if address.teredo:
        return list(address.teredo)
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):  # not :: nor ::1
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return []


def refused_kind(address: IPAddress) -> str | None:
    """What makes `address` no public destination, or None when it is one."""
    for kind, test in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    ):
        if test:
            return kind
    return None


def allowed_networks() -> list[Network]:
    return parse_networks("WEBHOOK_ALLOWED_NETWORKS", settings.WEBHOOK_ALLOWED_NETWORKS)
