"""A network namespace joined to the host by a veth pair, for partitions that are real: a process run in it
(``wrapper`` + its command) reaches the host only at ``HOST_IP``, and ``cut`` takes the link down (packets
are dropped, connections hang, nothing is refused) until ``restore``. Needs root and iproute2."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

#: the host's end of the pair, where a server the namespace must reach listens; and the namespace's end
HOST_IP, INNER_IP = "10.231.0.1", "10.231.0.2"


class NamespaceUnavailable(RuntimeError):
    """Not root, or no iproute2."""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Namespace:
    name: str
    host_link: str

    @property
    def wrapper(self) -> tuple[str, ...]:
        """What to put before a command to run it in the namespace."""
        return ("ip", "netns", "exec", self.name)

    def cut(self) -> None:
        ip("link", "set", self.host_link, "down")

    def restore(self) -> None:
        ip("link", "set", self.host_link, "up")


def can_make_namespaces() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@contextmanager
def network_namespace() -> Iterator[Namespace]:
    """A namespace whose only way out is the veth pair INNER_IP <-> HOST_IP; removed with its links after."""
    if not can_make_namespaces():
        raise NamespaceUnavailable("network namespaces need root and iproute2 (ip netns)")
    tag = uuid.uuid4().hex[:6]
    name, host_link, inner_link = f"jobsvc-{tag}", f"jh{tag}", f"jn{tag}"
    ip("netns", "add", name)
    try:
        ip("link", "add", host_link, "type", "veth", "peer", "name", inner_link)
        ip("link", "set", inner_link, "netns", name)
        ip("addr", "add", f"{HOST_IP}/30", "dev", host_link)
        ip("link", "set", host_link, "up")
        ip("-n", name, "addr", "add", f"{INNER_IP}/30", "dev", inner_link)
        ip("-n", name, "link", "set", inner_link, "up")
        ip("-n", name, "link", "set", "lo", "up")
        yield Namespace(name, host_link)
    finally:
        subprocess.run(["ip", "link", "del", host_link], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
