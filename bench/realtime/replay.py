"""Trace replay benchmark: the automerge-paper editing trace end to end through a server.

What it measures: one writer -- a stock JS client (``yjs`` + ``y-websocket``'s
``WebsocketProvider`` in Node, ``replay_client.mjs``) -- applies the trace (259,778
transactions of one keystroke each, ``tests/data/automerge-paper.json.gz``, see its
README) transaction by transaction to its ``Y.Text`` ``code``, so
each transaction leaves as one update message, as fast as it can (yielding to the event loop
every 1,000). Two more
stock JS clients listen. The clock starts when the writer starts applying and stops when
both listeners hold exactly ``endContent``; also reported: when the writer had applied
everything, when its socket's send buffer was empty, the server's CPU seconds and RSS, and
the bytes of all updates sent (pocdojo counts those against ``WS_MAX_DOCUMENT_BYTES``).

Targets (``--targets``): ``pocdojo`` (``pocdojo serve`` on embedded PostgreSQL and Valkey, one
dojo session; writer = host, listeners = two joined users; the update rate limit is lifted)
and ``reference`` (``@y/websocket-server`` 0.1.1). The floors: the same trace applied to a
local document, transaction by transaction, in JS (``yjs`` in Node) and in Python (``pycrdt``),
``--floor-runs`` times each (median). Every final text (writer, listeners, floors) is checked
against ``endContent``; any mismatch makes the exit status 1.

Run it from the repository root (JS packages first: ``npm ci --prefix bench/realtime``)::

    .venv/bin/python bench/realtime/replay.py
    .venv/bin/python bench/realtime/replay.py --targets reference --floor-runs 1

Everything runs on 127.0.0.1; servers and clients are stopped at the end, also on Ctrl-C or
SIGTERM. Editing-trace data: automerge-perf editing trace, Martin Kleppmann et al. (CC BY 4.0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _targets import (
    HERE,
    Running,
    create_dojos,
    engines,
    js_versions,
    load_average,
    log,
    pocdojo_server,
    profiled,
    reference_server,
    require_node_modules,
    revision,
    summarize_profile,
)

TRACE = HERE.parents[1] / "tests" / "data" / "automerge-paper.json.gz"
CLIENT = HERE / "replay_client.mjs"
TARGETS = ("pocdojo", "reference")
MiB = 1024 * 1024


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}"
    )
    parser.add_argument("--runs", type=int, default=1, help="end-to-end runs per target")
    parser.add_argument("--floor-runs", type=int, default=3, help="local runs per floor")
    parser.add_argument("--no-floors", action="store_true", help="skip the local floors")
    parser.add_argument("--timeout", type=float, default=900.0, help="per end-to-end run")
    parser.add_argument(
        "--max-document-bytes", type=int, default=None,
        help="pocdojo's WS_MAX_DOCUMENT_BYTES (default: the server's own, 8 MiB)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", nargs="?", const="python", choices=("python", "native"),
        help="sample pocdojo serve with py-spy during the replay and print where time went "
        "(--profile native: C frames too)",
    )  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=Path(".bench/realtime"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if set(args.targets) - set(TARGETS):
        parser.error(f"targets are {', '.join(TARGETS)}")
    return args


def load_trace(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt") as fh:
        trace: dict[str, Any] = json.load(fh)
    if not (trace["endContent"].isascii() and trace["startContent"].isascii()):
        raise SystemExit("this replay assumes an ASCII trace (positions are used as offsets)")
    return trace


# --- floors ----------------------------------------------------------------------------------


def pycrdt_floor(trace: dict[str, Any]) -> tuple[float, bool]:
    """Apply the trace to a local pycrdt document, one transaction per trace transaction.

    The trace is ASCII, so its code-point positions are also pycrdt's UTF-8 byte offsets."""
    from pycrdt import Doc, Text

    doc: Doc[Any] = Doc()
    text = doc.get("code", type=Text)
    if trace["startContent"]:
        text += trace["startContent"]
    started = time.perf_counter()
    for txn in trace["txns"]:
        with doc.transaction():
            for pos, delete, insert in txn["patches"]:
                if delete:
                    del text[pos : pos + delete]
                if insert:
                    text.insert(pos, insert)
    seconds = time.perf_counter() - started
    return seconds, str(text) == trace["endContent"]


async def js_floor(trace_path: Path) -> tuple[float, bool]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(CLIENT), "local", str(trace_path), cwd=HERE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"node local replay failed: {err.decode()[-2000:]}")
    event = json.loads(out.decode().strip().splitlines()[-1])
    return float(event["seconds"]), bool(event["ok"])


# --- end to end ------------------------------------------------------------------------------


class NodeClient:
    """A ``replay_client.mjs`` process and the JSON events it prints."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, name: str, mode: str, config: dict[str, Any]) -> NodeClient:
        proc = await asyncio.create_subprocess_exec(
            "node", str(CLIENT), mode, json.dumps(config), cwd=HERE,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True, limit=2**20,
        )  # fmt: skip
        return cls(name, proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                self.seen.append(event)
                await self.events.put(event)
        await self.events.put({"event": "exited", "code": await self.proc.wait()})

    async def wait_for(self, kind: str, within: float) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                event = await self.events.get()
                if event["event"] == kind:
                    return event
                if event["event"] in ("error", "exited"):
                    raise RuntimeError(f"{self.name}: {event}")
                if event["event"] == "closed":
                    log(f"{self.name}: socket closed {event}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(OSError, RuntimeError):
                self.send("exit")
            try:
                async with asyncio.timeout(5):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


@dataclass
class Replay:
    target: str
    ok: bool = False
    error: str = ""
    applied_s: float = float("nan")
    flushed_s: float = float("nan")
    listeners_s: list[float] = field(default_factory=list)
    total_s: float = float("nan")
    updates: int = 0
    update_bytes: int = 0
    state_bytes: int = 0
    server_cpu_s: float = 0.0
    engine_cpu_s: float | None = None
    server_rss_end: int = 0
    closes: list[dict[str, Any]] = field(default_factory=list)
    load: str = ""


async def replay_through(
    server: Running,
    configs: list[dict[str, Any]],
    within: float,
    profile: Path | None = None,
    native: bool = False,
) -> Replay:
    """configs: writer first, then the two listeners; ``profile``: py-spy the server into it."""
    result = Replay(server.name, load=load_average())
    clients: list[NodeClient] = []
    try:
        for i, config in enumerate(configs[1:], 1):
            clients.append(await NodeClient.start(f"listener {i}", "listen", config))
        for listener in clients:
            await listener.wait_for("ready", 60)
        writer = await NodeClient.start("writer", "write", configs[0])
        clients.insert(0, writer)
        await writer.wait_for("ready", 60)
        cpu_before = server.measured.sample().cpu
        engines_before = server.engines.sample().cpu if server.engines else 0.0
        with profiled(server.proc.pid, profile or Path(), enabled=bool(profile), native=native):
            writer.send("go")
            start = await writer.wait_for("start", 30)
            t0 = int(start["t"])
            applied = await writer.wait_for("applied", within)
            result.applied_s = (int(applied["t"]) - t0) / 1e9
            result.updates = applied["updates"]
            result.update_bytes = applied["updateBytes"]
            result.state_bytes = applied["stateBytes"]
            writer_ok = bool(applied["ok"])
            flushed = await writer.wait_for("flushed", within)
            result.flushed_s = (int(flushed["t"]) - t0) / 1e9
            for listener in clients[1:]:
                done = await listener.wait_for("done", within)
                result.listeners_s.append((int(done["t"]) - t0) / 1e9)
        result.total_s = max(result.listeners_s)
        result.server_cpu_s = server.measured.sample().cpu - cpu_before
        if server.engines:
            # PostgreSQL and Valkey keep working after the listeners are done (the last
            # persist); this is what they spent until then.
            result.engine_cpu_s = server.engines.sample().cpu - engines_before
        result.server_rss_end = server.measured.sample().rss
        result.ok = writer_ok and len(result.listeners_s) == 2
        if not writer_ok:
            result.error = "the writer's text differs from endContent"
    except (TimeoutError, RuntimeError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        for client in clients:
            result.closes += [e for e in client.seen if e["event"] == "closed"]
            await client.stop()
    return result


@contextlib.contextmanager
def target(
    name: str, args: argparse.Namespace, tag: str, trace: dict[str, Any]
) -> Iterator[tuple[Running, list[dict[str, Any]]]]:
    """A started server and the three client configs (writer first)."""
    base = {"trace": str(args.trace.resolve())}
    if name == "pocdojo":
        extra = {}
        if args.max_document_bytes:
            extra["WS_MAX_DOCUMENT_BYTES"] = str(args.max_document_bytes)
        with (
            engines(args.data_dir / "engines") as urls,
            pocdojo_server(urls, args.data_dir / "pocdojo" / f"replay-{tag}", **extra) as server,
        ):
            dojos = asyncio.run(create_dojos(server.port, 1, 3, initial_code=trace["startContent"]))
            url = f"ws://127.0.0.1:{server.port}/v1/dojos/sessions/{dojos.session_ids[0]}"
            configs = [
                dict(base, serverUrl=url, room="doc", token=token) for token in dojos.tokens[0]
            ]
            yield server, configs
    else:
        with reference_server(args.data_dir / "logs" / f"replay-{tag}") as server:
            url = f"ws://127.0.0.1:{server.port}"
            configs = [dict(base, serverUrl=url, room=f"replay-{tag}") for _ in range(3)]
            yield server, configs


# --- report ----------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(
    trace: dict[str, Any],
    floors: dict[str, list[tuple[float, bool]]],
    runs: list[Replay],
    versions: dict[str, str],
) -> str:
    lines = [
        "",
        f"Trace replay: automerge-paper, {len(trace['txns']):,} transactions, endContent "
        f"{len(trace['endContent']):,} characters",
        f"pocdojo {revision()}; versions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f", pycrdt {_pycrdt_version()}",
        "",
    ]
    floor_median: dict[str, float] = {}
    for name, got in floors.items():
        times = [t for t, _ in got]
        floor_median[name] = _median(times)
        ok = all(ok for _, ok in got)
        lines.append(
            f"floor {name:<22} median {floor_median[name]:7.2f} s  runs "
            + ", ".join(f"{t:.2f}" for t in times)
            + f"  final text {'== endContent' if ok else 'WRONG'}"
        )
    if floors:
        lines.append("")
    header = (
        f"{'target':<11}{'applied s':>10}{'flushed s':>10}{'listener 1 s':>13}"
        f"{'listener 2 s':>13}{'total s':>9}{'server CPU s':>13}{'+engines s':>11}"
        f"{'RSS end MiB':>12}{'updates':>9}{'update MiB':>11}  result"
    )
    lines += [header, "-" * len(header)]
    for r in runs:
        listeners = [*r.listeners_s, float("nan"), float("nan")][:2]
        engines_cpu = f"{r.engine_cpu_s:.1f}" if r.engine_cpu_s is not None else "-"
        lines.append(
            f"{r.target:<11}{r.applied_s:>10.2f}{r.flushed_s:>10.2f}{listeners[0]:>13.2f}"
            f"{listeners[1]:>13.2f}{r.total_s:>9.2f}{r.server_cpu_s:>13.1f}{engines_cpu:>11}"
            f"{r.server_rss_end / MiB:>12.0f}{r.updates:>9}{r.update_bytes / MiB:>11.2f}  "
            + ("ok (writer and both listeners == endContent)" if r.ok else f"FAILED {r.error}")
        )
    lines.append("")
    for r in runs:
        extra = f"load avg {r.load}"
        if r.closes:
            extra += f"; sockets closed: {r.closes}"
        lines.append(f"  {r.target}: {extra}")
    totals: dict[str, float] = {}
    for r in runs:
        if r.ok:
            totals.setdefault(r.target, r.total_s)
            totals[r.target] = min(totals[r.target], r.total_s)
    if "pocdojo" in totals and "reference" in totals:
        lines.append(
            f"pocdojo / reference (best total): {totals['pocdojo'] / totals['reference']:.2f}x"
        )
    for name, total in totals.items():
        for floor_name, floor_s in floor_median.items():
            lines.append(f"{name} total / floor {floor_name}: {total / floor_s:.2f}x")
    return "\n".join(lines)


def _pycrdt_version() -> str:
    from importlib.metadata import version

    return version("pycrdt")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    require_node_modules()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    trace = load_trace(args.trace)
    versions = js_versions()
    floors: dict[str, list[tuple[float, bool]]] = {}
    if not args.no_floors:
        floors["yjs (Node)"] = []
        floors["pycrdt (Python)"] = []
        for i in range(args.floor_runs):
            floors["yjs (Node)"].append(asyncio.run(js_floor(args.trace)))
            floors["pycrdt (Python)"].append(pycrdt_floor(trace))
            log(f"floors run {i + 1}: yjs {floors['yjs (Node)'][-1][0]:.2f} s, "
                f"pycrdt {floors['pycrdt (Python)'][-1][0]:.2f} s")  # fmt: skip
    runs: list[Replay] = []
    profiles: list[str] = []
    tag = uuid.uuid4().hex[:6]
    for name in args.targets:
        for _ in range(args.runs):
            with target(name, args, tag, trace) as (server, configs):
                log(f"{name}: replaying through {configs[0]['serverUrl']}")
                profile = None
                if args.profile and name == "pocdojo":
                    profile = args.data_dir / "profiles" / f"replay-{tag}.txt"
                native = args.profile == "native"
                run = asyncio.run(replay_through(server, configs, args.timeout, profile, native))
                runs.append(run)
                log(f"{name}: total {run.total_s:.2f} s {'ok' if run.ok else run.error}")
                if profile is not None:
                    profiles.append(summarize_profile(profile))
            tag = uuid.uuid4().hex[:6]
    text = report(trace, floors, runs, versions)
    print(text, flush=True)
    for summary in profiles:
        print("\n" + summary, flush=True)
    if args.json:
        args.json.write_text(json.dumps({
            "floors": floors, "runs": [r.__dict__ for r in runs], "versions": versions,
        }, indent=2, default=str))  # fmt: skip
    floors_ok = all(ok for got in floors.values() for _, ok in got)
    return 0 if floors_ok and all(r.ok for r in runs) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
