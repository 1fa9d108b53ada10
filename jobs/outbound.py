"""Outbound network calls that cannot be aimed at the worker's own network, even by DNS rebinding.

Every HTTP call a job makes goes through ``ctx["http"]``, whose transport (``guarded_transport``)
resolves the host once, checks every address it resolves to, and connects to a checked one: the name is
never resolved a second time, so a DNS server that answers a public address to the check and a private
one to the connection (DNS rebinding) reaches nothing. The request keeps its URL, so ``Host`` and the
TLS server name (SNI, and the certificate's check) stay the host's. Addresses are refused unless public
(global unicast) or, with ``allow_private``, always when they are the service's own Redis. A refusal
names the host, never the addresses it resolved to: a tenant learns nothing of the internal DNS.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpcore
import httpx
from publicsuffixlist import PublicSuffixList

from jobs.errors import PermanentJobError, RetryableJobError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: how a host is resolved: (host, port) -> its addresses, in the resolver's order
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The host's addresses, as the system resolver gives them (a literal address gives itself)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise RetryableJobError(f"{host}: temporary DNS failure") from None
        raise PermanentJobError(f"{host} does not resolve: {exc.strerror}") from None
    found = [
        ipaddress.ip_address(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)
    ]
    return list(dict.fromkeys(found))


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


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled with the package: no download


def registrable_domain(host: str) -> str:
    """The part of ``host`` one party registers (``hooks.eu.example.co.uk`` -> ``example.co.uk``,
    ``alice.github.io`` stays, the Public Suffix List's private section included); an IP address or a
    name with no registrable part is itself. What per-host limits key on, so that sub-domains share
    their domain's bucket."""
    bare = host.strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return _public_suffixes().privatesuffix(bare) or bare
    return bare


def _same_server(found: Iterable[IPAddress], guarded: Iterable[IPAddress]) -> bool:
    """Whether any address of ``found`` reaches a server at ``guarded``: every loopback address reaches
    the same local server."""
    found, guarded = set(found), set(guarded)
    if any(ip.is_loopback for ip in found) and any(ip.is_loopback for ip in guarded):
        return True
    return bool(found & guarded)


class OutboundGuard:
    """The policy every outbound connection passes: which addresses a host may be reached at."""

    def __init__(
        self,
        *,
        allow_private: bool,
        never: Collection[tuple[str, int]] = (),
        resolver: Resolver = resolve,
    ) -> None:
        self.allow_private = allow_private
        self.never = tuple(never)
        self.resolver = resolver

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` once and give the addresses it may be reached at (every one of them checked);
        PermanentJobError when any is off limits, RetryableJobError on a temporary DNS failure."""
        found = await self.resolver(host, port)
        if not found:
            raise PermanentJobError(f"{host} resolves to no IP address")
        for guarded_host, guarded_port in self.never:
            if guarded_port == port and _same_server(found, await self.resolver(guarded_host, port)):
                raise PermanentJobError(
                    f"{host}:{port} is the service's own Redis; outbound calls may not reach it"
                )
        if not self.allow_private and not all(is_public_address(ip) for ip in found):
            raise PermanentJobError(
                f"{host} resolves to a non-public address; outbound calls may reach only public addresses"
            )
        return found

    async def check_url(self, url: str) -> None:
        """Refuse (PermanentJobError) a URL that is not http(s), has no host, or whose host may not be
        reached; the transport checks again at connect time, against the addresses it connects to."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise PermanentJobError(f"invalid URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise PermanentJobError(f"URL scheme {parts.scheme!r} is not allowed; use http or https")
        if not host:
            raise PermanentJobError("URL has no host")
        await self.addresses(host, port or (443 if parts.scheme == "https" else 80))


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting a host name only to addresses the guard checked."""

    def __init__(self, guard: OutboundGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        refused: Exception | None = None
        for address in await self.guard.addresses(host, port):
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                refused = exc  # the next checked address, as a resolver's caller would
        assert refused is not None
        raise refused

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise PermanentJobError("outbound calls go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


#: httpcore's errors as httpx raises them (most specific first), so callers catch httpx's only
HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, ours in HTTPX_ERRORS:
            if isinstance(exc, core):
                raise ours(str(exc), request=request) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes], request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)  # httpcore's streams have one: the connection's end
        if close is not None:
            await close()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport on httpcore's connection pool, whose network backend is a
    ``GuardedNetworkBackend``: httpx's own transport offers no way to choose the backend. No proxy (a
    proxy would resolve the name itself); HTTP/1.1."""

    def __init__(
        self,
        guard: OutboundGuard,
        *,
        verify: ssl.SSLContext | bool = True,
        network: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        """``network``: what the checked addresses are connected over (default: httpcore's AnyIO)."""
        ssl_context = (
            verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        )
        limits = httpx.Limits()
        self.connections = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(guard, network),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors(request):
            response = await self.connections.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream, request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.connections.aclose()


def guarded_client(
    guard: OutboundGuard, *, timeout_s: float, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """The HTTP client jobs share (``ctx["http"]``): redirects not followed, no proxy from the
    environment (it would bypass the guard), every connection through the guard."""
    return httpx.AsyncClient(
        transport=GuardedTransport(guard, verify=verify),
        follow_redirects=False,
        trust_env=False,
        timeout=timeout_s,
    )
