"""Networks named in settings (CIDRs, comma-separated), and whether an address
is inside them. Read by settings.py itself, so a bad value stops the process
at start, saying which setting holds it."""

import ipaddress

from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(setting: str, cidrs: list[str]) -> list[Network]:
    """`cidrs` as networks; a bare address is a network of one."""
    try:
        return [ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip()]
    except ValueError as bad:
        raise ImproperlyConfigured(f"{setting}: {bad}") from None


def address_in(text: str, networks: list[Network]) -> bool:
    """Whether the address `text` (a client's, as the server reports it) is in
    one of `networks`. An IPv4 client of a dual-stack socket shows as
    ::ffff:a.b.c.d, and counts as a.b.c.d."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # a scope names an interface
    except ValueError:  # no address (a Unix socket), or not one
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)
