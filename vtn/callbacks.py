"""Which subscription callback URLs the VTN accepts (pure: no database, no DNS).

A callback must be an absolute http(s) URL. Unless ``VTN_CALLBACK_ALLOW_PRIVATE`` is set
(tests and the sandbox set it), its host may not be a loopback, link-local, private,
shared, multicast, reserved or unspecified IP address, nor ``localhost`` or a name under
``.localhost``, ``.local`` or ``.internal``: the VTN must not be made to call into its own
network. Names are not resolved here (the answer could change before any delivery); a
notifier must check the address it connects to again.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

_INTERNAL_NAMES = ("localhost",)
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address if it is one, in any form a resolver accepts
    (``127.1``, ``2130706433``, ``0x7f.1`` and IPv4-mapped IPv6 included)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (address.is_loopback or address.is_link_local or address.is_private
            or address.is_multicast or address.is_reserved or address.is_unspecified
            or not address.is_global)


def refusal(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` is not an acceptable callback, or None if it is."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        host = None
    else:
        if parts.scheme not in ("http", "https"):
            host = None
    if not host:
        return f"callbackUrl {url!r} must be an absolute http(s) URL."
    if allow_private:
        return None
    name = host.rstrip(".").lower()
    address = _literal_address(name)
    if address is not None and internal(address):
        return (f"callbackUrl {url!r} points at a loopback, link-local or private address "
                f"({address}); this VTN only calls back to public addresses.")
    if address is None and (name in _INTERNAL_NAMES or name.endswith(_INTERNAL_SUFFIXES)):
        return (f"callbackUrl {url!r} names a local host ({name}); this VTN only calls back "
                "to public addresses.")
    return None
