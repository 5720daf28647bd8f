"""The SSRF guard for adapter upstreams: which addresses Mecha will send a prompt to.

An upstream must be an http(s) URL with a host, and neither the host as written nor any
address it resolves to may be link-local (169.254.0.0/16 with the cloud metadata service,
fe80::/10), "this network" (0.0.0.0/8, ::), multicast, or a known metadata address. IPv6
forms that carry an IPv4 address (``::ffff:a.b.c.d``, ``::a.b.c.d``, NAT64
``64:ff9b::/96``) are judged by that IPv4 address, and host names are resolved the way
the HTTP client will resolve them, so numeric tricks (``2852039166``, ``0xa9fea9fe``)
are caught. Loopback and private ranges are allowed: local model servers live there.

The check runs when an adapter starts; the HTTP client resolves the name again for each
connection, so a name whose DNS answer changes later (rebinding) is not covered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from mecha.errors import MechaError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: "this network": packets to it reach the local host or nothing
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
#: IPv4-compatible IPv6 (deprecated) and the well-known NAT64 prefix embed an IPv4 address
EMBEDDING_V4 = (ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b::/96"))
#: metadata services outside the link-local range
METADATA = {
    ipaddress.ip_address("fd00:ec2::254"): "the AWS instance metadata service",
    ipaddress.ip_address("100.100.100.200"): "the Alibaba Cloud metadata service",
}
HINT = (
    "point upstream: at the model server's real address, e.g. http://127.0.0.1:11434 "
    "or https://api.example.com"
)


class UnsafeUpstream(MechaError):
    """An adapter upstream URL cannot be used: malformed, unresolvable or blocked."""


def check_upstream(url: str) -> None:
    """Refuse ``url`` unless it is http(s) and every address of its host is allowed."""
    host, port = _host_port(url)
    if _checked_literal(url, host):
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise _unresolvable(url, host, exc) from None
    _check(url, host, _addresses(infos))


async def check_upstream_async(url: str) -> None:
    """``check_upstream`` with the name lookup run off the event loop."""
    host, port = _host_port(url)
    if _checked_literal(url, host):
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise _unresolvable(url, host, exc) from None
    _check(url, host, _addresses(infos))


def _checked_literal(url: str, host: str) -> bool:
    """Check a host written as an address (no lookup needed); False if it is a name."""
    literal = _literal(host)
    if literal is None:
        return False
    _check(url, "", [literal])
    return True


def blocked(address: Address) -> str:
    """Why ``address`` may not be an upstream ("" if it may)."""
    inner = _embedded_v4(address)
    if inner is not None:
        return blocked(inner)
    if address in METADATA:
        return METADATA[address]
    if address.is_link_local:
        return "a link-local address (the cloud metadata service lives at 169.254.169.254)"
    if address.is_unspecified or (address.version == 4 and address in THIS_NETWORK):
        return 'an unspecified ("this network") address'
    if address.is_multicast:
        return "a multicast address"
    return ""


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUpstream(
            f'the upstream "{url}" is not an http:// or https:// URL with a host', hint=HINT
        )
    try:
        port = parts.port
    except ValueError:
        raise UnsafeUpstream(f'the upstream "{url}" has an invalid port', hint=HINT) from None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _addresses(infos: Sequence[tuple[object, ...]]) -> list[Address]:
    found: list[Address] = []
    for info in infos:
        sockaddr = info[4]
        if isinstance(sockaddr, tuple) and sockaddr and isinstance(sockaddr[0], str):
            found.append(ipaddress.ip_address(sockaddr[0].split("%", 1)[0]))
    return found


def _embedded_v4(address: Address) -> ipaddress.IPv4Address | None:
    if address.version != 6:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in network for network in EMBEDDING_V4) and int(address) & 0xFFFFFFFF > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _check(url: str, name: str, addresses: list[Address]) -> None:
    """Refuse the first blocked address; ``name`` is the host name that resolved to them."""
    if not addresses:
        raise _unresolvable(url, name, OSError("no addresses"))
    for address in addresses:
        reason = blocked(address)
        if reason:
            inner = _embedded_v4(address)
            shown = f"{inner} (written as {address})" if inner else str(address)
            via = f", which {name} resolves to" if name else ""
            raise UnsafeUpstream(
                f'the upstream "{url}" points at {shown}{via}: {reason}; '
                "Mecha does not send prompts there",
                hint=HINT,
            )


def _unresolvable(url: str, host: str, exc: BaseException) -> UnsafeUpstream:
    return UnsafeUpstream(
        f'the upstream "{url}" cannot be used: the host name "{host}" does not resolve ({exc})',
        hint="check the spelling and that this machine's DNS knows the name",
    )
