"""A guard for outbound network calls, so a job cannot be aimed at the worker's own network.

Known limit: the name is resolved here and again when the client connects, so a DNS server that
answers differently the second time (DNS rebinding) can slip past; pinning the checked address to the
connection would close that gap.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

from jobs.errors import PermanentJobError, RetryableJobError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


async def _resolve(host: str, port: int) -> set[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise RetryableJobError(f"{host}: temporary DNS failure") from None
        raise PermanentJobError(f"{host} does not resolve: {exc.strerror}") from None
    addresses = {
        ipaddress.ip_address(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)
    }
    # every loopback address reaches the same local server
    if any(ip.is_loopback for ip in addresses):
        addresses |= {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    return addresses


def is_public_address(ip: IPAddress) -> bool:
    """True for a global unicast address; IPv4-mapped and 6to4 addresses are judged by their IPv4 part."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip.sixtofour is not None and not is_public_address(ip.sixtofour):
            return False
        if ip.is_site_local:
            return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


async def check_destination(
    url: str, *, allow_private: bool, never: Collection[tuple[str, int]] = ()
) -> None:
    """Refuse (PermanentJobError) a URL that is not http(s) or whose host resolves to a non-global address,
    and, even with ``allow_private``, one that reaches an endpoint of ``never`` (host, port): the
    service's own Redis.

    With ``allow_private`` only the scheme and host are checked. A temporary DNS failure raises
    RetryableJobError.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise PermanentJobError(f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise PermanentJobError(f"URL scheme {parts.scheme!r} is not allowed; use http or https")
    if not host:
        raise PermanentJobError("URL has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    guarded = [endpoint for endpoint in never if endpoint[1] == port]
    if allow_private and not guarded:
        return
    addresses = await _resolve(host, port)
    for guarded_host, _ in guarded:
        if addresses & (await _resolve(guarded_host, port)):
            raise PermanentJobError(
                f"{host}:{port} is the service's own Redis; outbound calls may not reach it"
            )
    if allow_private:
        return
    if not addresses:
        raise PermanentJobError(f"{host} resolves to no IP address")
    refused = sorted(str(ip) for ip in addresses if not is_public_address(ip))
    if refused:
        raise PermanentJobError(
            f"{host} resolves to a non-public address ({', '.join(refused)}); outbound calls may reach "
            "only public addresses"
        )
