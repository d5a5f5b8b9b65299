"""A real TURN server for tests: coturn's ``turnserver`` (Debian's ``coturn`` package) on
loopback, checking credentials by the TURN REST API convention (``use-auth-secret``).

``allow-loopback-peers`` lets it relay between peers on 127.0.0.1, which coturn refuses by
default; its user database lives in a temporary folder.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pocdojo.core.netports import free_ports

START_TIMEOUT = 10.0
READY = "Total General servers"


@dataclass(frozen=True)
class Turn:
    url: str  # turn:127.0.0.1:PORT?transport=udp
    secret: str


def find_turnserver() -> str | None:
    return shutil.which("turnserver")


@contextlib.contextmanager
def turn_server(binary: str, secret: str = "pocdojo-test-turn-secret") -> Iterator[Turn]:
    """Run coturn until the block ends."""
    port, low = free_ports(2)
    with tempfile.TemporaryDirectory(prefix="pocdojo-turn-") as folder:
        log = Path(folder) / "turn.log"
        command = [
            binary,
            "-n",  # no configuration file: only these options
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            f"--min-port={max(1024, low)}",
            f"--max-port={max(1024, low) + 200}",
            "--use-auth-secret",
            f"--static-auth-secret={secret}",
            "--realm=pocdojo.test",
            "--allow-loopback-peers",
            "--fingerprint",
            f"--userdb={Path(folder) / 'turndb'}",
            f"--log-file={log}",
            "--simple-log",
        ]
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not (log.exists() and READY in log.read_text(errors="replace")):
                if proc.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text(errors="replace") if log.exists() else ""
                    raise RuntimeError(f"coturn did not start (exit {proc.poll()}):\n{text}")
                time.sleep(0.05)
            yield Turn(f"turn:127.0.0.1:{port}?transport=udp", secret)
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
