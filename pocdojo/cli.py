"""The ``pocdojo`` command: serve, worker, migrate, reindex, cluster."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from pocdojo.core.db.migrate import migrate
from pocdojo.core.embedded import embedded_engines
from pocdojo.core.errors import ConfigError
from pocdojo.core.logging import configure_logging
from pocdojo.core.settings import Settings


def _load(**options: Any) -> Settings:
    try:
        settings = Settings.load(**options)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


@contextlib.contextmanager
def _engines(settings: Settings, *, redis: bool = True) -> Iterator[tuple[Settings, list[str]]]:
    """Start what is not configured, migrate, and yield fully resolved settings."""
    if not settings.embedded_database:
        try:  # fail before starting anything
            settings.with_jwt_secret(embedded=False)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
    with embedded_engines(
        settings.data_dir,
        postgres=settings.embedded_database,
        valkey=redis and settings.embedded_redis,
    ) as started:
        app_url = settings.database_app_url
        redis_url = settings.redis_url
        resolved = settings.with_engines(
            database_url=started.database_url or settings.require_database_url(),
            database_app_url=started.database_app_url
            or (app_url.get_secret_value() if app_url else None),
            redis_url=started.redis_url or (redis_url.get_secret_value() if redis_url else ""),
        )
        try:
            resolved = resolved.with_jwt_secret(embedded=settings.embedded_database)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        applied = asyncio.run(migrate(resolved.require_database_url()))
        if applied:
            click.echo(f"applied migrations: {', '.join(applied)}")
        yield resolved, started.started


_data_dir = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where embedded engines keep their data [env DATA_DIR; default ./.pocdojo].",
)


@click.group()
@click.version_option(package_name="pocdojo")
def main() -> None:
    """pocdojo: POCs, search and live collaborative dojos."""


@main.command()
@click.option("--host", default=None, help="Address to listen on [env HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env PORT; default 8080].")
@click.option(
    "--no-worker",
    is_flag=True,
    default=False,
    help="Do not run a job worker in this process (run `pocdojo worker` elsewhere).",
)
@_data_dir
def serve(host: str | None, port: int | None, no_worker: bool, data_dir: Path | None) -> None:
    """Serve HTTP and WebSocket, starting PostgreSQL and Valkey if no URL is configured."""
    settings = _load(host=host, port=port, data_dir=data_dir, worker=False if no_worker else None)
    from pocdojo.app import create_app
    from pocdojo.server import run

    with _engines(settings) as (resolved, started):
        for line in started:
            click.echo(f"started {line}")
        if not started:
            click.echo("using the configured PostgreSQL and Redis; started nothing")
        click.echo(
            f"pocdojo listening on http://{resolved.host}:{resolved.port}: open it in a browser,"
            " sign up your company, start a dojo  (Ctrl-C stops)"
        )
        run(create_app(resolved), host=resolved.host, port=resolved.port)
        click.echo("stopping")
    click.echo("stopped")


@main.command()
@click.option("--burst", is_flag=True, default=False, help="Exit once the queue is empty.")
@click.option(
    "--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port."
)
@_data_dir
def worker(burst: bool, metrics_port: int | None, data_dir: Path | None) -> None:
    """Run a job worker (reports, videos, emails) on the configured PostgreSQL and Redis."""
    settings = _load(data_dir=data_dir)
    if settings.embedded_database or settings.embedded_redis:
        raise click.ClickException(
            "pocdojo worker needs DATABASE_URL and REDIS_URL; with the embedded engines, "
            "`pocdojo serve` runs a worker in its own process"
        )
    with _engines(settings) as (resolved, _):
        click.echo(f"pocdojo worker on queue {resolved.job_queue!r}  (Ctrl-C stops)")
        asyncio.run(_run_worker(resolved, burst=burst, metrics_port=metrics_port))
    click.echo("stopped")


async def _run_worker(settings: Settings, *, burst: bool, metrics_port: int | None) -> None:
    from prometheus_client import CollectorRegistry, start_http_server

    from pocdojo.jobs.worker import RunningWorker

    registry = CollectorRegistry()
    if metrics_port is not None:
        start_http_server(metrics_port, addr=settings.host, registry=registry)
    running = RunningWorker(settings, burst=burst, registry=registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    running.start()
    done = asyncio.create_task(running.wait())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({done, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    await running.stop()


@main.command(name="migrate")
@_data_dir
def migrate_command(data_dir: Path | None) -> None:
    """Apply pending database migrations and exit."""
    settings = _load(data_dir=data_dir)
    with _engines(settings, redis=False):
        click.echo("database is up to date")


@main.command()
@_data_dir
def reindex(data_dir: Path | None) -> None:
    """Rebuild the search index from the database (OpenSearch when OPENSEARCH_URL is set)."""
    from pocdojo.core.search import opensearch
    from pocdojo.core.search.reindex import reindex_opensearch, reindex_postgres

    settings = _load(data_dir=data_dir)
    with _engines(settings, redis=False) as (resolved, _):
        owner = resolved.require_database_url()
        if resolved.opensearch_url:
            client = opensearch.connect(resolved.opensearch_url)

            async def run() -> int:
                try:
                    return await reindex_opensearch(owner, client)
                finally:
                    await client.close()

            count = asyncio.run(run())
            click.echo(f"indexed {count} POCs into OpenSearch")
        else:
            asyncio.run(reindex_postgres(owner))
            click.echo("rebuilt the PostgreSQL search indexes")


@main.group(invoke_without_command=True)
@click.option("--nodes", type=click.IntRange(1, 32), default=3, show_default=True)
@click.option("--workers", type=click.IntRange(0, 32), default=1, show_default=True)
@click.option("--port", type=int, default=8080, show_default=True, help="The balancer's port.")
@click.option(
    "--node-port",
    type=int,
    default=8081,
    show_default=True,
    help="The first node's port; the others follow.",
)
@click.option(
    "--redis-shards",
    type=click.IntRange(0, 16),
    default=0,
    show_default=True,
    help="Run the rooms' bus on a Valkey cluster of this many primaries, each with a replica "
    "(at least 3; 0: on the one Valkey).",
)
@_data_dir
@click.pass_context
def cluster(
    ctx: click.Context,
    nodes: int,
    workers: int,
    port: int,
    node_port: int,
    redis_shards: int,
    data_dir: Path | None,
) -> None:
    """Run the production layout on this machine: PostgreSQL, Valkey, an S3 server, NODES
    server nodes and WORKERS job workers behind HAProxy, on one URL, until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from pocdojo.cluster import Cluster, Layout

    if 0 < redis_shards < 3:
        raise click.BadParameter(
            "a Valkey cluster needs at least 3 primaries", param_hint="--redis-shards"
        )
    settings = _load(data_dir=data_dir)
    layout = Layout(settings.data_dir, nodes, workers, port, node_port, redis_shards=redis_shards)
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    supervisor = Cluster(layout, click.echo)
    try:
        with supervisor.running():
            click.echo(
                f"pocdojo cluster: {_count(nodes, 'node')} and {_count(workers, 'worker')}"
                f" behind HAProxy at "
                f"{layout.url}  (Ctrl-C stops; `pocdojo cluster status` lists them)"
            )
            supervisor.supervise(lambda: stop["now"])
            click.echo("stopping: the nodes drain first")
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("stopped")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@cluster.command(name="status")
@_data_dir
def cluster_status(data_dir: Path | None) -> None:
    """List the cluster's processes and their health."""
    from pocdojo.cluster import status

    settings = _load(data_dir=data_dir)
    found = status(settings.data_dir)
    if found is None:
        raise click.ClickException(f"no cluster runs on {settings.data_dir}")
    state, members = found
    click.echo(f"{state['url']}  (supervisor pid {state['supervisor']})")
    click.echo(f"  PostgreSQL {state['databaseUrl']}\n  Valkey     {state['redisUrl']}")
    for m in members:
        port = "" if m.port is None else f":{m.port}"
        health = "running" if m.alive else "NOT RUNNING"
        click.echo(
            f"  {m.name:<10} {m.role:<8} pid {m.pid or '-':<8} {port:<7} {health:<11} "
            f"{m.ready}  restarts {m.restarts}"
        )
    if not all(m.alive for m in members):
        raise SystemExit(1)


@cluster.command(name="restart")
@_data_dir
def cluster_restart(data_dir: Path | None) -> None:
    """Restart every node, one at a time, each draining first (a rolling restart)."""
    from pocdojo.cluster import rolling_restart

    settings = _load(data_dir=data_dir)
    try:
        rolling_restart(settings.data_dir, click.echo)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("every node restarted")
