"""Which custom hosts the gateway may call: an SSRF policy checked before any connection.

A custom host comes from a client, so without a policy anyone could make the gateway fetch
cloud metadata (169.254.169.254) or reach private services. Literal addresses are judged here,
in every notation ``inet_aton`` accepts (decimal ``2852039166``, hex ``0xA9FEA9FE``, octal,
short ``169.254.43518``); names are judged again on the addresses they resolve to, by the
upstream resolver, before a socket is opened.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from fastgate.errors import GatewayError, bad_request

_METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_BLOCKED_SUFFIXES = (".internal", ".local", ".localdomain", ".intranet", ".lan", ".home", ".corp", ".onion")
# AWS IMDS over IPv6, Alibaba's and Oracle Cloud's metadata addresses, beside the link-local
# 169.254/16.
_METADATA_NETS = (
    ipaddress.ip_network("fd00:ec2::/32"),
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("192.0.0.192/32"),
)
#: A last label that is a number: no top-level domain is all-numeric (RFC 3696 §2), so such a
#: name is an address in a notation ``inet_aton`` refused here (``0169.254.169.254``,
#: ``1.2.3.4.5``) that another resolver might still read as one.
_NUMERIC_LABEL = re.compile(r"(?:^|\.)(?:[0-9]+|0x[0-9a-f]*)$")


def parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host literal denotes, including legacy IPv4 notations; None for a name."""
    h = host.strip("[]")
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(h))
    except (OSError, ValueError):
        return None


def address_verdict(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> str | None:
    """Why an address is refused, or None when it may be called."""
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 carried inside IPv6 (mapped ::ffff:a.b.c.d, 6to4 2002:aabb:ccdd::) is judged as IPv4.
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    if ip.is_link_local or any(ip in net for net in _METADATA_NETS):
        return "link-local or cloud metadata address"
    if ip.is_loopback:
        return None if allow_loopback else "loopback address"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return "reserved address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT):
        return "private address"
    return None


_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f]")
_VERDICT_CACHE_SIZE = 1024


class HostPolicy:
    """The SSRF policy, built once from settings."""

    def __init__(self, trusted: tuple[str, ...] = (), allow_loopback: bool = True) -> None:
        self.allow_loopback = allow_loopback
        self._trusted = frozenset(t for t in trusted if not t.startswith("."))
        self._trusted_suffixes = tuple(t for t in trusted if t.startswith("."))
        self._verdicts: dict[tuple[str, str], str | GatewayError] = {}

    def is_trusted(self, host: str) -> bool:
        h = host.lower().strip("[]")
        return h in self._trusted or h.endswith(self._trusted_suffixes)

    def check_url(self, url: str, field: str = "custom_host") -> str:
        """The URL without a trailing slash, or a 400 saying why it is refused.

        Clients send the same few hosts over and over, so verdicts are remembered (bounded).
        """
        key = (url, field)
        verdict = self._verdicts.get(key)
        if verdict is None:
            try:
                verdict = self._check_url(url, field)
            except GatewayError as exc:
                verdict = exc
            if len(self._verdicts) >= _VERDICT_CACHE_SIZE:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        if isinstance(verdict, GatewayError):
            raise verdict.with_traceback(None)  # a fresh traceback: re-raising grows the old one
        return verdict

    def _check_url(self, url: str, field: str) -> str:
        if _UNSAFE_CHARS.search(url):
            raise bad_request(f"Invalid {field}: control characters or spaces", param=field)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise bad_request(f"Invalid {field}: {exc}", param=field) from None
        del port
        if parts.scheme not in ("http", "https"):
            raise bad_request(f"Invalid {field}: only http and https URLs are allowed", param=field)
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise bad_request(f"Invalid {field}: credentials in the URL are not allowed", param=field)
        host = (parts.hostname or "").lower()
        if not host:
            raise bad_request(f"Invalid {field}: no host", param=field)
        if not host.isascii() or "%" in host:
            raise bad_request(f"Invalid {field}: host must be plain ASCII", param=field)
        if parts.query or parts.fragment:
            raise bad_request(f"Invalid {field}: query and fragment are not allowed", param=field)
        reason = None if self.is_trusted(host) else self.host_verdict(host)
        if reason is not None:
            raise bad_request(f"Invalid {field}: {reason} is not allowed", param=field)
        return url.rstrip("/")

    def host_verdict(self, host: str) -> str | None:
        """Why a host (name or literal) is refused before resolution, or None."""
        h = host.rstrip(".")
        if h != host:
            return "a trailing dot"
        ip = parse_ip(h)
        if ip is not None:
            return address_verdict(ip, self.allow_loopback)
        if h in _METADATA_NAMES:
            return "cloud metadata host"
        if _NUMERIC_LABEL.search(h):
            return "a numeric host name that is not a valid address"
        if h in _LOCAL_NAMES or h.endswith(".localhost"):
            return None if self.allow_loopback else "loopback host"
        if h.endswith(_BLOCKED_SUFFIXES):
            return "internal host name"
        return None

    def resolved_verdict(self, host: str, address: str) -> str | None:
        """Judge an address a name resolved to (a public name may point inside)."""
        if self.is_trusted(host):
            return None
        ip = parse_ip(address)
        return None if ip is None else address_verdict(ip, self.allow_loopback)
