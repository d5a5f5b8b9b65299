"""Fixtures of the realtime tests: the npm packages of the JavaScript Yjs clients, and the
clients themselves."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Engines
from tests.dojo_helpers import Dojo
from tests.realtime.jsclient import JsClient, JsFactory, server_url_of

JS_DIR = Path(__file__).resolve().parent.parent / "js"
_STAMP = ".pocdojo-lock-sha256"


def _lock_digest() -> str:
    return hashlib.sha256((JS_DIR / "package-lock.json").read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def js_dir() -> Path:
    """``tests/js`` with its npm packages installed from package-lock.json.

    ``npm ci`` runs once, when ``node_modules`` is missing or was installed from another
    lock file (a digest of the lock file is kept in ``node_modules`` after a good install).
    It talks to the npm registry and nothing else; no package runs install scripts.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js not installed")
    stamp = JS_DIR / "node_modules" / _STAMP
    # Parallel test workers install one at a time; the others find the stamp and go on.
    with (JS_DIR / "package-lock.json").open("rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            digest = _lock_digest()
            if not stamp.is_file() or stamp.read_text().strip() != digest:
                done = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                    cwd=JS_DIR,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                if done.returncode != 0:
                    pytest.fail(
                        f"npm ci failed ({done.returncode}):\n{done.stdout}\n{done.stderr}",
                        pytrace=False,
                    )
                stamp.write_text(digest + "\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return JS_DIR


@pytest.fixture
async def node(js_dir: Path) -> AsyncIterator[JsFactory]:
    """Start JavaScript clients (ready to take commands); all are ended when the test ends."""
    started: list[JsClient] = []

    async def spawn(
        name: str, dojo: Dojo, token: str, *, server_url: str | None = None
    ) -> JsClient:
        js = await JsClient.start(js_dir, name, server_url or server_url_of(dojo), token)
        started.append(js)
        await js.wait_for(lambda: js.client_id >= 0, "ready")
        return js

    yield spawn
    for js in started:
        await js.stop()
    assert all(js.proc.returncode is not None for js in started)


@pytest.fixture
async def owner_pool(engines: Engines) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the owning login, to read what the nodes stored, past row security."""
    pool = await asyncpg.create_pool(engines.database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()
