"""The outbound guard pins each connection to an address it checked: a name resolved once, every address
checked, the connection made to a checked one, ``Host`` and the TLS server name kept. DNS rebinding is
played by a resolver that answers a public address first and loopback after; the servers are real (an
HTTP server on 127.0.0.1, and a TLS one with a certificate made for the test)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jobs.errors import PermanentJobError
from jobs.outbound import GuardedTransport, IPAddress, OutboundGuard, SocketOption, guarded_client
from tests.webhook_receiver import HookServer

PUBLIC = ipaddress.ip_address("93.184.215.14")
LOOPBACK = ipaddress.ip_address("127.0.0.1")


@dataclass
class RebindingResolver:
    """Answers ``first`` to the first question about a name, ``then`` to every later one."""

    first: list[IPAddress]
    then: list[IPAddress]
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        return self.first if len(self.asked) == 1 else self.then


@dataclass
class Unreachable(httpcore.AsyncNetworkBackend):
    """The network beyond this machine, which the test cannot reach: records where it was asked to
    connect and refuses."""

    tried: list[tuple[str, int]] = field(default_factory=list)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.tried.append((host, port))
        raise httpcore.ConnectError(f"{host} is beyond this machine")


async def test_a_name_that_rebinds_to_loopback_after_the_check_reaches_only_the_checked_address(
    hook_server: HookServer,
) -> None:
    resolver = RebindingResolver(first=[PUBLIC], then=[LOOPBACK])
    beyond = Unreachable()
    guard = OutboundGuard(allow_private=False, resolver=resolver)
    async with httpx.AsyncClient(transport=GuardedTransport(guard, network=beyond), timeout=5) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://rebind.example:{hook_server.port}/hooks/orders", json={})
    assert resolver.asked == ["rebind.example"]  # resolved once: checked and connected from one answer
    assert beyond.tried == [(str(PUBLIC), hook_server.port)]
    assert hook_server.requests == []  # the local server behind the second answer saw nothing


async def test_a_name_with_any_private_address_is_refused_before_any_connection(
    hook_server: HookServer,
) -> None:
    resolver = RebindingResolver(first=[PUBLIC, LOOPBACK], then=[PUBLIC, LOOPBACK])
    beyond = Unreachable()
    guard = OutboundGuard(allow_private=False, resolver=resolver)
    async with httpx.AsyncClient(transport=GuardedTransport(guard, network=beyond), timeout=5) as client:
        with pytest.raises(PermanentJobError, match="non-public address") as refused:
            await client.get(f"http://mixed.example:{hook_server.port}/")
    assert "127.0.0.1" not in str(refused.value)
    assert (beyond.tried, hook_server.requests) == ([], [])


@dataclass
class TlsServer:
    port: int
    context: ssl.SSLContext
    server_names: list[str | None] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


def certificate_for(name: str, directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    cert, key = certificate_for("hooks.example", tmp_path)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    server = TlsServer(port=0, context=trusting)

    def remember_name(_: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
        server.server_names.append(name)

    serving.sni_callback = remember_name  # type: ignore[assignment]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"host:"):
                server.hosts.append(line.split(b":", 1)[1].strip().decode())
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    listening = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=serving)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()
        await listening.wait_closed()


async def test_a_pinned_connection_keeps_the_hosts_name_for_tls_and_the_host_header(
    tls_server: TlsServer,
) -> None:
    resolver = RebindingResolver(first=[LOOPBACK], then=[LOOPBACK])
    guard = OutboundGuard(allow_private=True, resolver=resolver)
    async with guarded_client(guard, timeout_s=5, verify=tls_server.context) as client:
        response = await client.get(f"https://hooks.example:{tls_server.port}/hooks")
    assert response.status_code == 204
    assert tls_server.server_names == ["hooks.example"]  # SNI, and the certificate checked against it
    assert tls_server.hosts == [f"hooks.example:{tls_server.port}"]
    assert resolver.asked == ["hooks.example"]
