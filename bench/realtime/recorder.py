"""The recorder: server CPU per recorded participant, and how many one node records without gaps.

One pocdojo node (``pocdojo serve`` on embedded PostgreSQL and Valkey, no job worker, so no
mixing runs in it) and, as the reference, a bare aiortc receiver (``_recorder_reference.py``:
an ``RTCPeerConnection`` and a ``MediaRecorder`` writing Ogg/Opus per participant, nothing
else). For each N of ``--participants``, ``--repeat`` times, both targets one after the
other:

1. pocdojo: N participants in dojo sessions of ``--per-dojo`` (10) participants and a host
   each (REST); each host opens its events socket and starts its dojo's recording. Then the
   participants' processes (``_recorder_peers.py``, never the server's process) open their
   events sockets, join voice and send an offer to the recorder through the signaling path
   (``{"type": "signal", "to": "recorder", ...}``); the answer comes back on the socket and
   the peers connect. Reference: the same peers POST their offers to it.
2. Every peer sends a tone of its own frequency (20 ms Opus packets), paced in real time,
   exactly ``--duration`` seconds of audio from a common start.
3. The server's CPU (psutil, its process and threads) and the clients' are taken over the
   window from ``--warmup`` seconds after the start to the end of the tones: CPU seconds per
   participant per second of audio.
4. ``--drain`` seconds later the host stops the recording (reference: ``POST /stop``); once
   the parts are uploaded, each is decoded: its length against the audio sent, its strongest
   frequency against its sender's. The recorder's receiver statistics (aiortc's
   ``inbound-rtp`` of every recorder peer: packets received and lost, jitter) come from the
   server's ``/metrics`` (the reference answers them to ``/stop``); the senders' own
   statistics give the packets sent.

A run is **without gaps** when every participant's part is there, carrying its sender's
tone, every received stream lost at most ``--max-loss`` (1 %) of its packets (receiver's
``packetsLost`` over expected), the recorders received at least 1 - ``--max-loss`` of the
packets sent, and every part's decoded length is within ``--max-length-error`` (2 %) of
the audio sent. The most participants without gaps is the largest N at which every run,
and every run at each smaller N, was without gaps.

Run from the repository root::

    .venv/bin/python bench/realtime/recorder.py --quick        # under a minute
    .venv/bin/python bench/realtime/recorder.py                # 1 to 64 participants, 3 runs

Every process it starts is stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import numpy as np
from _targets import (
    HERE,
    EngineUrls,
    Measured,
    Running,
    _spawn,
    _wait_port,
    create_dojos,
    engines,
    free_port,
    load_average,
    log,
    pocdojo_server,
    revision,
)
from prometheus_client.parser import text_string_to_metric_families

from pocdojo.media import mix

RATE = 48000
FRAME = 960
FULL = {"participants": "1,2,4,8,16,24,32,48,64", "duration": 20.0, "warmup": 2.0, "drain": 2.0,
        "repeat": 3}  # fmt: skip
QUICK = {"participants": "1,4", "duration": 5.0, "warmup": 1.0, "drain": 1.0, "repeat": 1}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--participants", default=None,
                        help="N, comma-separated (1,2,4,8,16,32; at most 49)")  # fmt: skip
    parser.add_argument("--duration", type=float, help="audio sent (20 s)")
    parser.add_argument("--warmup", type=float, help="not measured (2 s)")
    parser.add_argument("--drain", type=float, help="before the stop (2 s)")
    parser.add_argument("--repeat", type=int, help="runs per N and target (3)")
    parser.add_argument("--targets", default="pocdojo,reference")
    parser.add_argument(
        "--client-procs", type=int, default=0, help="sender processes (1 per 16 participants)"
    )
    parser.add_argument("--max-loss", type=float, default=0.01)
    parser.add_argument("--max-length-error", type=float, default=0.02)
    parser.add_argument("--keep-going", action="store_true",
                        help="go on to larger N after an N where every run had gaps")  # fmt: skip
    parser.add_argument("--per-dojo", type=int, default=10,
                        help="participants per dojo session (10)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=60.0, help="per step (60 s)")
    parser.add_argument("--data-dir", type=Path, default=Path(".bench/recorder"))
    parser.add_argument("--json", type=Path, help="write every run to this file")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: N 1,4, 5 s of audio, one run each")  # fmt: skip
    args = parser.parse_args()
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.ns = [int(n) for n in args.participants.split(",")]
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.ns or min(args.ns) < 1:
        parser.error("--participants: at least 1")
    if not 1 <= args.per_dojo <= 49:
        parser.error("--per-dojo: from 1 to 49 (a dojo holds 50 with its host)")
    if set(args.targets) - {"pocdojo", "reference"}:
        parser.error("--targets: pocdojo, reference")
    if args.duration <= args.warmup:
        parser.error("--duration must exceed --warmup")
    return args


# --- one run ---------------------------------------------------------------------------------


@dataclass
class Run:
    target: str
    n: int
    repeat: int
    load_before: str = ""
    load_after: str = ""
    window: float = 0.0  # seconds of audio measured
    server_cpu: float = 0.0  # seconds, over the window
    clients_cpu: float = 0.0
    connect_cpu: float = 0.0  # server, from the first offer until every peer connected
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0  # the receivers' packetsLost
    streams: int = 0  # received audio streams counted
    streams_over_loss: int = 0  # streams that lost more than --max-loss
    jitter_max: float = 0.0  # seconds (pocdojo: the histogram bucket's upper bound)
    late_max: float = 0.0  # how late the senders made their last frames, at worst
    sent_seconds: float = 0.0
    part_seconds: list[float] = field(default_factory=list)
    wrong_tones: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def cpu_per_participant_second(self) -> float:
        return self.server_cpu / (self.n * self.window) if self.window else math.nan

    @property
    def loss(self) -> float:
        expected = self.packets_received + self.packets_lost
        return self.packets_lost / expected if expected else math.nan

    @property
    def unreceived(self) -> float:
        """Packets sent that no recorder received, over packets sent."""
        if not self.packets_sent:
            return math.nan
        return max(0, self.packets_sent - self.packets_received) / self.packets_sent

    @property
    def length_error(self) -> float:
        """The largest relative difference between a part's length and the audio sent."""
        if not self.part_seconds or not self.sent_seconds:
            return math.nan
        return max(abs(s - self.sent_seconds) for s in self.part_seconds) / self.sent_seconds

    @property
    def worst_length_diff(self) -> float:
        """The part length minus the audio sent, in seconds, of the part furthest from it."""
        if not self.part_seconds:
            return math.nan
        return max((s - self.sent_seconds for s in self.part_seconds), key=abs)

    def gaps(self, args: argparse.Namespace) -> list[str]:
        """Why this run had gaps (empty: none)."""
        why = list(self.errors[:3])
        if len(self.part_seconds) < self.n:
            why.append(f"{self.n - len(self.part_seconds)} parts missing")
        if self.wrong_tones:
            why.append(f"{self.wrong_tones} parts without their sender's tone")
        if self.streams < self.n:
            why.append(f"{self.n - self.streams} streams never received")
        if self.streams_over_loss:
            why.append(f"{self.streams_over_loss} of {self.streams} streams lost over "
                       f"{args.max_loss:.0%}")  # fmt: skip
        if not self.unreceived <= args.max_loss:
            why.append(f"{self.unreceived:.1%} of the packets sent not received")
        if not self.length_error <= args.max_length_error:
            why.append(f"a part's length off by {self.length_error:.1%}")
        return why


class Clients:
    """The sender processes of one run."""

    def __init__(self, procs: list[asyncio.subprocess.Process]) -> None:
        self.procs = procs
        self.measured = Measured([p.pid for p in procs])

    @classmethod
    async def start(
        cls, args: argparse.Namespace, mode: str, urls: list[str], log_dir: Path
    ) -> Clients:
        count = args.client_procs or min(4, math.ceil(len(urls) / 16))
        procs = []
        budget = round(args.duration * RATE / FRAME) * FRAME
        for i in range(count):
            mine = [{"url": url, "frequency": frequency(k)}
                    for k, url in enumerate(urls) if k % count == i]  # fmt: skip
            with (log_dir / f"peers-{i}.log").open("ab") as err:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, str(HERE / "_recorder_peers.py"),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                    start_new_session=True,
                )  # fmt: skip
            procs.append(proc)
            spec = {"mode": mode, "participants": mine, "budget": budget,
                    "timeout": args.timeout}  # fmt: skip
            await cls._send(proc, spec)
        return cls(procs)

    @staticmethod
    async def _send(proc: asyncio.subprocess.Process, message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        await proc.stdin.drain()

    async def tell(self, message: dict[str, Any]) -> None:
        for proc in self.procs:
            await self._send(proc, message)

    async def expect(self, event: str, within: float) -> list[dict[str, Any]]:
        async def one(proc: asyncio.subprocess.Process) -> dict[str, Any]:
            assert proc.stdout is not None
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError(f"a sender process ended (exit {await proc.wait()})")
            got: dict[str, Any] = json.loads(line)
            if got.get("event") != event:
                raise RuntimeError(f"expected {event} from a sender process, got {got}")
            return got

        return await asyncio.wait_for(asyncio.gather(*(one(p) for p in self.procs)), within)

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def frequency(k: int) -> float:
    """Participant k's tone: 200 Hz, then 25 Hz apart (every part's tone tells its sender)."""
    return 200.0 + 25.0 * k


async def _sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.monotonic()))


async def send_tones(
    run: Run, args: argparse.Namespace, server: Measured, clients: Clients
) -> None:
    """Everyone is connected: play the tones and measure the CPU of the window."""
    start_at = time.monotonic() + 0.5
    await clients.tell({"start_at": start_at})
    end = start_at + round(args.duration * RATE / FRAME) * FRAME / RATE
    await _sleep_until(start_at + args.warmup)
    s0, c0 = server.sample().cpu, clients.measured.sample().cpu
    await _sleep_until(end)
    s1, c1 = server.sample().cpu, clients.measured.sample().cpu
    run.window = end - start_at - args.warmup
    run.server_cpu, run.clients_cpu = s1 - s0, c1 - c0
    sent = await clients.expect("sent", args.timeout)
    people = [p for got in sent for p in got["participants"]]
    run.packets_sent = sum(p["packets_sent"] for p in people)
    run.late_max = max(p["late_max"] for p in people)
    run.sent_seconds = max(p["samples"] for p in people) / RATE
    run.errors += [p["error"] for p in people if p["error"]]
    await asyncio.sleep(args.drain)


async def connect(run: Run, args: argparse.Namespace, server: Measured, clients: Clients) -> None:
    before = server.sample().cpu
    ready = await clients.expect("ready", args.timeout * 2)
    run.connect_cpu = server.sample().cpu - before
    run.errors += [e for got in ready for e in got["errors"]]


# --- pocdojo ---------------------------------------------------------------------------------


class Events:
    """An events socket read in the background, its events queued."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self.queue.put(json.loads(msg.data))

    async def next(self, kind: str, within: float, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                event = await self.queue.get()
                if event.get("type") == "error":
                    raise RuntimeError(f"host's events socket: {event}")
                if event.get("type") == kind and all(event.get(k) == v for k, v in match.items()):
                    return event

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


async def metrics(http: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """The recorder's samples of the server's ``/metrics``, histogram buckets by bound."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("pocdojo_recorder_"):
                bound = sample.labels.get("le")
                found[sample.name + (f"[{bound}]" if bound else "")] = sample.value
    return found


def _from_metrics(run: Run, args: argparse.Namespace, before: dict[str, float],
                  after: dict[str, float]) -> None:  # fmt: skip
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    run.packets_received = round(delta("pocdojo_recorder_packets_received_total"))
    run.packets_lost = round(delta("pocdojo_recorder_packets_lost_total"))
    loss = "pocdojo_recorder_stream_loss_ratio"
    run.streams = round(delta(f"{loss}_count"))
    bounds = sorted(float(k.split("[")[1][:-1]) for k in after if k.startswith(f"{loss}_bucket"))
    within = max((b for b in bounds if b <= args.max_loss), default=None)
    kept = delta(f"{loss}_bucket[{within}]") if within is not None else 0.0
    run.streams_over_loss = run.streams - round(kept)
    jitter = "pocdojo_recorder_stream_jitter_seconds"
    for key in sorted((k for k in after if k.startswith(f"{jitter}_bucket")),
                      key=lambda k: float(k.split("[")[1][:-1])):  # fmt: skip
        if round(delta(key)) >= run.streams:
            run.jitter_max = float(key.split("[")[1][:-1])
            break


async def pocdojo_run(
    run: Run, args: argparse.Namespace, server: Running, urls: EngineUrls, log_dir: Path
) -> None:
    rooms = math.ceil(run.n / args.per_dojo)
    dojos = await create_dojos(server.port, rooms, min(run.n, args.per_dojo) + 1)
    base = f"ws://127.0.0.1:{server.port}/v1/dojos/sessions/"
    events = [f"{base}{sid}/events?token=" for sid in dojos.session_ids]
    # participant k: in dojo k // per_dojo, as its user 1 + k % per_dojo (user 0 hosts)
    senders = [events[k // args.per_dojo] + dojos.tokens[k // args.per_dojo][1 + k % args.per_dojo]
               for k in range(run.n)]  # fmt: skip
    hosts: list[Events] = []
    async with aiohttp.ClientSession() as http:
        try:
            for room in range(rooms):
                hosts.append(Events(await http.ws_connect(events[room] + dojos.tokens[room][0])))
            started = await asyncio.gather(*(record(host, "start", args.timeout) for host in hosts))
            before = await metrics(http, server.port)
            clients = await Clients.start(args, "pocdojo", senders, log_dir)
            try:
                await connect(run, args, server.measured, clients)
                await send_tones(run, args, server.measured, clients)
                await asyncio.gather(*(record(host, "stop", args.timeout) for host in hosts))
                ids = [event["recordingId"] for event in started]
                keys = await uploaded(urls, ids, run.n, args.timeout)
                _from_metrics(run, args, before, await metrics(http, server.port))
                await clients.tell({"close": True})
                await clients.expect("closed", args.timeout)
            finally:
                await clients.stop()
        finally:
            for host in hosts:
                await host.close()
    store = Path(server.extra["data_dir"]) / "server" / "objects"
    decode_parts(run, [store / key for key in keys])


async def record(host: Events, action: str, within: float) -> dict[str, Any]:
    """The host starts or stops its dojo's recording on its events socket; the event."""
    if action == "start":
        await host.next("welcome", within)
    await host.send({"type": "recording", "action": action})
    state = "started" if action == "start" else "stopped"
    return await host.next("recording", within, state=state)


async def uploaded(urls: EngineUrls, recording_ids: list[str], n: int, within: float) -> list[str]:
    """The object keys of the recordings' parts once ``n`` are uploaded (or ``within``
    seconds have passed)."""
    conn = await asyncpg.connect(urls.owner)
    try:
        deadline = time.monotonic() + within
        while True:
            rows = await conn.fetch(
                "SELECT object_key, bytes FROM dojo_recording_parts WHERE recording_id = ANY($1)",
                [uuid.UUID(i) for i in recording_ids],
            )
            done = [r["object_key"] for r in rows if r["bytes"] is not None]
            if len(done) >= n or time.monotonic() > deadline:
                return done
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


# --- the reference ---------------------------------------------------------------------------


@contextlib.contextmanager
def reference_receiver(data_dir: Path) -> Iterator[Running]:
    port = free_port()
    log_path = data_dir / "reference.log"
    command = [sys.executable, str(HERE / "_recorder_reference.py"), str(port),
               str(data_dir / "reference-parts")]  # fmt: skip
    with _spawn("aiortc reference", command, dict(os.environ), log_path) as proc:
        _wait_port(proc, port, "aiortc reference", log_path)
        yield Running("reference", proc, port, log_path, Measured([proc.pid]))


async def reference_run(run: Run, args: argparse.Namespace, server: Running, log_dir: Path) -> None:
    base = f"http://127.0.0.1:{server.port}"
    clients = await Clients.start(args, "reference", [f"{base}/offer"] * run.n, log_dir)
    try:
        await connect(run, args, server.measured, clients)
        await send_tones(run, args, server.measured, clients)
        async with aiohttp.ClientSession() as http, http.post(f"{base}/stop") as resp:
            parts = (await resp.json())["parts"]
        await clients.tell({"close": True})
        await clients.expect("closed", args.timeout)
    finally:
        await clients.stop()
    run.packets_received = sum(p["received"] for p in parts)
    run.packets_lost = sum(p["lost"] for p in parts)
    run.streams = sum(1 for p in parts if p["received"])
    run.streams_over_loss = sum(
        1
        for p in parts
        if p["received"] and p["lost"] / (p["received"] + p["lost"]) > args.max_loss
    )
    run.jitter_max = max((p["jitter"] for p in parts), default=0.0)
    decode_parts(run, [Path(p["path"]) for p in parts], remove=True)


# --- parts -----------------------------------------------------------------------------------


def decode_parts(run: Run, paths: list[Path], *, remove: bool = False) -> None:
    """Each part's decoded length, and whether its strongest frequency is a sender's; the
    files are deleted afterwards if ``remove``."""
    wanted = {frequency(k) for k in range(run.n)}
    heard: set[float] = set()
    for path in paths:
        try:
            seconds, peak = _decode(path)
        except Exception as exc:
            run.errors.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        run.part_seconds.append(seconds)
        tone = min(wanted, key=lambda f: abs(f - peak))
        if abs(tone - peak) > 5 or tone in heard:
            run.wrong_tones += 1
        heard.add(tone)
    for path in paths if remove else []:
        path.unlink(missing_ok=True)


def _decode(path: Path) -> tuple[float, float]:
    """The length in seconds of the audio in ``path``, and its strongest frequency in Hz
    (over its middle second)."""
    audio, rate = mix.decode(path).astype(np.float64), mix.RATE
    middle = audio[max(0, len(audio) // 2 - rate // 2) :][:rate]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    peak = float(np.fft.rfftfreq(len(middle), 1 / rate)[int(spectrum.argmax())])
    return len(audio) / rate, peak


# --- the bench -------------------------------------------------------------------------------


def idle_cpu(server: Measured, seconds: float) -> float:
    """The server's CPU with nothing to do, in % of a core."""
    before = server.sample().cpu
    time.sleep(seconds)
    return 100 * (server.sample().cpu - before) / seconds


async def one_run(
    target: str, n: int, repeat: int, args: argparse.Namespace, servers: dict[str, Running],
    urls: EngineUrls | None,
) -> Run:  # fmt: skip
    run = Run(target, n, repeat, load_before=load_average())
    log_dir = args.data_dir / "logs"
    try:
        if target == "pocdojo":
            assert urls is not None
            await pocdojo_run(run, args, servers[target], urls, log_dir)
        else:
            await reference_run(run, args, servers[target], log_dir)
    except Exception as exc:
        log(f"{target} N={n}: {type(exc).__name__}: {exc}")
        run.errors.append(f"{type(exc).__name__}: {exc}")
    servers[target].check()
    run.load_after = load_average()
    gaps = run.gaps(args)
    log(f"{target:9s} N={n:2d} #{repeat}: {1000 * run.cpu_per_participant_second:.1f} ms CPU per "
        f"participant-second, server {100 * run.server_cpu / run.window if run.window else 0:.0f} "
        f"% of a core, clients {100 * run.clients_cpu / run.window if run.window else 0:.0f} %, "
        f"loss {run.loss:.2%}, length error {run.length_error:.2%}, "
        f"{'gaps: ' + '; '.join(gaps) if gaps else 'no gaps'} (load {run.load_after})")  # fmt: skip
    return run


async def bench(args: argparse.Namespace, servers: dict[str, Running],
                urls: EngineUrls | None) -> list[Run]:  # fmt: skip
    runs: list[Run] = []
    stopped: set[str] = set()
    for n in args.ns:
        for repeat in range(1, args.repeat + 1):
            for target in args.targets:
                if target not in stopped:
                    runs.append(await one_run(target, n, repeat, args, servers, urls))
        for target in args.targets:
            mine = [r for r in runs if r.target == target and r.n == n]
            if mine and all(r.gaps(args) for r in mine) and not args.keep_going:
                log(f"{target}: every run at N={n} had gaps; no larger N for it")
                stopped.add(target)
    return runs


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def report(runs: list[Run], args: argparse.Namespace, idle: dict[str, float]) -> None:
    print()
    print(f"recorder bench, {revision()}; {args.duration:.0f} s of audio per participant, "
          f"CPU over the last {args.duration - args.warmup:.0f} s; medians of {args.repeat} "
          f"run(s); 2 cores shared with other work (load average per run below)")  # fmt: skip
    print("server idle: " + ", ".join(f"{t} {v:.1f} % of a core" for t, v in idle.items()))
    print(f"without gaps = every part there with its sender's tone, every stream lost <= "
          f"{args.max_loss:.0%} of its packets (receiver stats), >= {1 - args.max_loss:.0%} of "
          f"the packets sent received, every part's length within {args.max_length_error:.0%} "
          f"of the audio sent")  # fmt: skip
    heads = ["N", "target", "CPU ms/part-s", "vs ref", "server %core", "clients %core",
             "connect ms/part", "lost %", "unrecv %", "part-sent ms", "jitter ms", "late ms",
             "no gaps"]  # fmt: skip
    rows = []
    for n in args.ns:
        ref = _median([r.cpu_per_participant_second for r in runs
                       if r.target == "reference" and r.n == n])  # fmt: skip
        for target in args.targets:
            mine = [r for r in runs if r.target == target and r.n == n]
            if not mine:
                continue
            cpu = _median([r.cpu_per_participant_second for r in mine])
            ratio = f"{cpu / ref:.2f}x" if target != "reference" and ref > 0 else ""
            rows.append([
                str(n), target, f"{1000 * cpu:.1f}", ratio,
                f"{_median([100 * r.server_cpu / r.window for r in mine if r.window]):.0f}",
                f"{_median([100 * r.clients_cpu / r.window for r in mine if r.window]):.0f}",
                f"{_median([1000 * r.connect_cpu / r.n for r in mine]):.0f}",
                f"{100 * _median([r.loss for r in mine]):.2f}",
                f"{100 * _median([r.unreceived for r in mine]):.2f}",
                f"{1000 * _median([r.worst_length_diff for r in mine]):.0f}",
                f"{1000 * _median([r.jitter_max for r in mine]):.1f}",
                f"{1000 * _median([r.late_max for r in mine]):.0f}",
                f"{sum(not r.gaps(args) for r in mine)}/{len(mine)}",
            ])  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    print("  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    for target in args.targets:
        best = 0
        for n in sorted(args.ns):
            mine = [r for r in runs if r.target == target and r.n == n]
            if not mine or any(r.gaps(args) for r in mine):
                break
            best = n
        print(f"most participants without gaps, {target}: {best or 'none'}"
              f"{' (the largest N tried)' if best == max(args.ns) else ''}")  # fmt: skip
    for run in runs:
        if run.gaps(args):
            print(f"  gaps, {run.target} N={run.n} #{run.repeat}: " + "; ".join(run.gaps(args)))
    print("loads (before/after): " + ", ".join(
        f"{r.target[0]}{r.n}#{r.repeat} {r.load_before.split()[0]}/{r.load_after.split()[0]}"
        for r in runs))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps([
            {**asdict(r), "gaps": r.gaps(args)} for r in runs
        ], indent=1))  # fmt: skip


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    args.data_dir = args.data_dir.resolve()
    (args.data_dir / "logs").mkdir(parents=True, exist_ok=True)
    print(f"load average before: {load_average()}")
    idle: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        servers: dict[str, Running] = {}
        urls = None
        if "pocdojo" in args.targets:
            urls = stack.enter_context(engines(args.data_dir / "engines"))
            # no job worker (no mixing in the measured process); a user's events sockets, one
            # per dojo it is in, are not limited to WS_SOCKETS_PER_USER (10)
            server = stack.enter_context(
                pocdojo_server(urls, args.data_dir, WORKER="false", WS_SOCKETS_PER_USER="10000")
            )
            server.extra["data_dir"] = str(args.data_dir)
            servers["pocdojo"] = server
        if "reference" in args.targets:
            servers["reference"] = stack.enter_context(reference_receiver(args.data_dir))
        for target, running in servers.items():
            idle[target] = idle_cpu(running.measured, 1.0 if args.quick else 3.0)
        runs = asyncio.run(bench(args, servers, urls))
    report(runs, args, idle)
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
