"""A real Redis Cluster for the tests: three primaries (and a replica each, if asked) on free ports, data in
temporary directories."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

from .redis_server import free_port

#: How long a node may be away before the others mark it failed (and the cluster goes down with it).
NODE_TIMEOUT_MS = 5000


class Node(NamedTuple):
    """A node of the cluster: its index in ``RedisCluster.ports``, its id, the id of the primary it
    replicates (None: it is a primary), the slot ranges it serves."""

    index: int
    id: str
    replica_of: str | None
    slots: list[str]


def ask(port: int, *command: str, timeout: float = 0.5) -> str:
    """One command to the node on ``port`` through a plain socket: its reply's text ("" if it does not answer)."""
    request = f"*{len(command)}\r\n" + "".join(f"${len(part.encode())}\r\n{part}\r\n" for part in command)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(request.encode())
            reply = b""
            while True:
                chunk = s.recv(65536)
                reply += chunk
                if not chunk or _complete(reply):
                    return reply.decode(errors="replace")
    except OSError:
        return ""


def _complete(reply: bytes) -> bool:
    if reply[:1] in (b"+", b"-", b":"):
        return reply.endswith(b"\r\n")
    if reply[:1] == b"$":
        head, _, rest = reply.partition(b"\r\n")
        return int(head[1:]) < 0 or len(rest) >= int(head[1:]) + 2
    return False


class RedisCluster:
    """``nodes`` cluster-enabled ``redis-server`` processes joined by ``redis-cli --cluster create``, of
    which ``nodes / (replicas + 1)`` primaries and the rest their replicas.

    Node ``i`` serves ``ports[i]``; ``stop_node(i)`` / ``start_node(i)`` keep its data (append-only file)
    and its place in the cluster (its nodes file). A node away for ``node_timeout_ms`` is marked failed,
    and its replica, if it has one, takes its place.
    """

    def __init__(
        self, directory: Path, nodes: int = 3, *, replicas: int = 0, node_timeout_ms: int = NODE_TIMEOUT_MS
    ) -> None:
        self.server = shutil.which("redis-server")
        self.cli = shutil.which("redis-cli")
        self.directory = directory
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        ports: set[int] = set()
        while len(ports) < 2 * nodes:  # a port and a cluster bus port each (the default, port + 10000, may not exist)
            ports.add(free_port())
        self.ports, self.bus_ports = sorted(ports)[:nodes], sorted(ports)[nodes:]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * nodes

    @property
    def url(self) -> str:
        """The first node's URL: a cluster client finds the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> RedisCluster:
        try:
            self._create()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        for i in range(len(self.ports)):
            self.start_node(i, wait=False)
        assert self.cli is not None
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        self.wait_ok()

    def start_node(self, i: int, *, wait: bool = True) -> None:
        """Start node ``i`` (again); with ``wait``, until every node says the cluster is ok."""
        assert self.server is not None and self.processes[i] is None
        port = self.ports[i]
        node_dir = self.directory / f"node-{port}"
        node_dir.mkdir(parents=True, exist_ok=True)
        self.processes[i] = subprocess.Popen(
            [
                self.server,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.directory / f"nodes-{port}.conf"),
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--port",
                str(port),
                "--cluster-port",
                str(self.bus_ports[i]),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--protected-mode",
                "no",
                "--dir",
                str(node_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while "+PONG" not in ask(port, "PING"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        if wait:
            self.wait_ok()

    def wait_ok(self, limit: float = 30) -> None:
        """Until ``CLUSTER INFO`` says ``cluster_state:ok`` on every running node."""
        deadline = time.monotonic() + limit
        while True:
            if all(self.state(i) == "ok" for i, process in enumerate(self.processes) if process is not None):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster on ports {self.ports} is not ok after {limit:g}s")
            time.sleep(0.05)

    def heal(self) -> None:
        """Start the nodes a test left stopped, and wait until the cluster is ok."""
        for i, process in enumerate(self.processes):
            if process is None:
                self.start_node(i, wait=False)
        self.wait_ok()

    def state(self, i: int) -> str:
        """``cluster_state`` as node ``i`` sees it: ok or fail ("" if it does not answer)."""
        for line in ask(self.ports[i], "CLUSTER", "INFO").splitlines():
            if line.startswith("cluster_state:"):
                return line.split(":", 1)[1].strip()
        return ""

    def nodes(self) -> list[Node]:
        """The nodes as ``CLUSTER NODES`` on a running node describes them."""
        running = next(self.ports[i] for i, process in enumerate(self.processes) if process is not None)
        out = []
        for line in ask(running, "CLUSTER", "NODES").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8:
                port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                out.append(Node(self.ports.index(port), fields[0], None if fields[3] == "-" else fields[3], fields[8:]))
        return out

    def replica_of(self, i: int) -> int:
        """The node that replicates node ``i``."""
        nodes = self.nodes()
        primary = next(node.id for node in nodes if node.index == i)
        return next(node.index for node in nodes if node.replica_of == primary)

    def role(self, i: int) -> str:
        """``master`` or ``slave``, as node ``i`` says of itself (``INFO replication``; "" if it does not answer)."""
        for line in ask(self.ports[i], "INFO", "replication").splitlines():
            if line.startswith("role:"):
                return line.split(":", 1)[1].strip()
        return ""

    def wait_promoted(self, i: int, limit: float = 30) -> None:
        """Until replica ``i`` has taken its failed primary's place and the cluster is ok again."""
        deadline = time.monotonic() + limit
        while self.role(i) != "master":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replica on port {self.ports[i]} was not promoted within {limit:g}s")
            time.sleep(0.05)
        self.wait_ok(limit)

    def node_of(self, key: str) -> int:
        """The node that serves ``key``, as the cluster says (``CLUSTER KEYSLOT``, ``CLUSTER NODES``)."""
        running = next(self.ports[i] for i, process in enumerate(self.processes) if process is not None)
        slot = int(ask(running, "CLUSTER", "KEYSLOT", key).strip().lstrip(":"))
        for node in self.nodes():
            for served in node.slots:
                first, _, last = served.partition("-")
                if first.isdigit() and int(first) <= slot <= int(last or first):
                    return node.index
        raise LookupError(f"no node serves slot {slot} of {key!r}")

    def stop_node(self, i: int, *, kill: bool = False) -> None:
        """Stop node ``i``; with ``kill``, it dies at once (SIGKILL), as a crashed host would."""
        process = self.processes[i]
        if process is not None:
            process.kill() if kill else process.terminate()
            process.wait(timeout=10)
            self.processes[i] = None

    def stop(self) -> None:
        for i in range(len(self.ports)):
            self.stop_node(i)
