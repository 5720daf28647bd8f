"""The SSRF guard for adapter upstreams: what it refuses and what it lets through."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from mecha.runtimes.adapters.ssrf import (
    UnsafeUpstream,
    blocked,
    check_upstream,
    check_upstream_async,
)

REFUSED = {
    "http://169.254.169.254/": "link-local",
    "http://169.254.169.254/latest/meta-data/": "169.254.169.254",
    "http://0.0.0.0:80/": "unspecified",
    "http://0.1.2.3/": "unspecified",
    "http://[fe80::1]/": "link-local",
    "http://[fe80::1%25eth0]:8080/": "link-local",
    "http://[::ffff:169.254.169.254]/": "169.254.169.254 (written as ::ffff:a9fe:a9fe)",
    "http://[::ffff:0.0.0.0]/": "unspecified",
    "http://[::169.254.169.254]/": "link-local",
    "http://[64:ff9b::169.254.169.254]/": "link-local",
    "http://[::]/": "unspecified",
    "http://224.0.0.1/": "multicast",
    "http://[ff02::1]/": "multicast",
    "http://[fd00:ec2::254]/": "AWS instance metadata",
    "http://100.100.100.200/": "Alibaba Cloud metadata",
}

#: host names the system resolver turns into blocked addresses (inet_aton forms)
REFUSED_AFTER_LOOKUP = {
    "http://2852039166/": "169.254.169.254",
    "http://0xa9fea9fe/": "169.254.169.254",
    "http://0251.0376.0251.0376/": "169.254.169.254",
    "http://169.254.43518/": "169.254.169.254",
    "http://0/": "0.0.0.0",
}

ALLOWED = [
    "http://127.0.0.1:11434",
    "http://10.0.0.5/",
    "http://192.168.1.20:8000/v1",
    "http://172.16.0.1",
    "http://[::1]:8080/",
    "http://localhost:11434",
    "https://localhost/v1",
    "http://127.1/",
]


@pytest.mark.parametrize(("url", "reason"), REFUSED.items())
def test_blocked_addresses_are_refused(url: str, reason: str) -> None:
    """Literal link-local, unspecified, multicast and metadata addresses, in every form."""
    with pytest.raises(UnsafeUpstream) as caught:
        check_upstream(url)
    assert reason in caught.value.message
    assert url in caught.value.message
    assert "127.0.0.1" in caught.value.hint  # says what to write instead


@pytest.mark.parametrize(("url", "address"), REFUSED_AFTER_LOOKUP.items())
def test_names_are_judged_by_what_they_resolve_to(url: str, address: str) -> None:
    """A host that is not a literal IP is resolved, and every address is checked."""
    with pytest.raises(UnsafeUpstream) as caught:
        check_upstream(url)
    host = url.split("/")[2]
    assert f"points at {address}, which {host} resolves to:" in caught.value.message


@pytest.mark.parametrize("url", ALLOWED)
def test_loopback_private_and_local_names_are_allowed(url: str) -> None:
    """Local model servers live on loopback and private networks."""
    check_upstream(url)
    asyncio.run(check_upstream_async(url))


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://127.0.0.1/", "not an http:// or https:// URL"),
        ("127.0.0.1:11434", "not an http:// or https:// URL"),
        ("http:///v1", "not an http:// or https:// URL"),
        ("", "not an http:// or https:// URL"),
        ("http://127.0.0.1:99999/", "invalid port"),
        ("http://no-such-host.invalid/", 'host name "no-such-host.invalid" does not resolve'),
    ],
)
def test_unusable_urls_say_why(url: str, words: str) -> None:
    """Malformed or unresolvable upstreams are refused with a reason and a hint."""
    with pytest.raises(UnsafeUpstream) as caught:
        check_upstream(url)
    assert words in caught.value.message
    assert caught.value.hint


def test_the_async_check_refuses_the_same() -> None:
    """The async variant resolves off the loop and applies the same rules."""
    for url in [*REFUSED, *REFUSED_AFTER_LOOKUP, "http://no-such-host.invalid/"]:
        with pytest.raises(UnsafeUpstream):
            asyncio.run(check_upstream_async(url))


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("169.254.0.1", False),
        ("169.253.255.255", True),
        ("169.255.0.0", True),
        ("0.255.255.255", False),
        ("1.0.0.0", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:169.254.1.1", False),
        ("febf::1", False),
        ("fec0::1", True),
        ("239.255.255.255", False),
        ("240.0.0.1", True),
    ],
)
def test_range_edges(address: str, allowed: bool) -> None:
    """The blocked ranges end exactly where they should."""
    assert (blocked(ipaddress.ip_address(address)) == "") is allowed
