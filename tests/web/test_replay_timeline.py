"""The replay player's timeline (web/src/replay/timeline.js) in Node, against the server's:
for a history of two writers' edits made with pycrdt, the code it shows at any second, moving
forward and back across its checkpoints, is what ``crdt.timeline.code_at`` says."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from typing import Any

import pytest
from pycrdt import Doc, Text

from pocdojo.crdt.timeline import Step, Timeline, b64, code_at
from tests.web.browser import REPO

TIMELINE_JS = REPO / "web" / "src" / "replay" / "timeline.js"
YJS = REPO / "web" / "node_modules" / "yjs"

# Read a timeline and a list of seconds on stdin; print the code at each, in that order.
SCRIPT = f"""
import {{ readFileSync }} from 'node:fs'
import {{ CodeTimeline }} from {json.dumps(TIMELINE_JS.as_uri())}
const input = JSON.parse(readFileSync(0, 'utf8'))
const timeline = new CodeTimeline(input.timeline)
console.log(JSON.stringify(input.seconds.map((s) => timeline.at(s).code)))
"""


def two_writers(edits: int) -> Timeline:
    """A base document and ``edits`` steps, a quarter second apart from 0.25 s, by two
    pycrdt clients that see each other's edits (inserts and deletes, some non-ASCII)."""
    rng = random.Random(7)
    docs: list[Doc[Any]] = [Doc(), Doc()]
    texts = [d.get("code", type=Text) for d in docs]
    texts[0] += "def kata():\n    return 42\n"
    base = docs[0].get_update()
    docs[1].apply_update(base)
    steps = []
    for n in range(edits):
        who = n % 2
        doc, text = docs[who], texts[who]
        before = doc.get_state()
        now = str(text)
        if len(now) > 20 and rng.random() < 0.3:
            # pycrdt counts UTF-8 bytes: cut whole characters only.
            start = rng.randrange(len(now) - 5)
            at = len(now[:start].encode())
            del text[at : at + len(now[start : start + 3].encode())]
        else:
            text.insert(len(now.encode()), rng.choice(["x", "# é\n", "y = 1\n", "→"]))
        update = doc.get_update(before)
        docs[1 - who].apply_update(update)
        steps.append(Step((n + 1) * 0.25, update, None))
    return Timeline(base, steps)


def test_the_player_timeline_shows_the_servers_code_at_every_second() -> None:
    node = shutil.which("node")
    if node is None or not YJS.is_dir():
        pytest.skip("needs Node and web/node_modules (npm ci in web/)")
    timeline = two_writers(200)
    answer = {
        "base": b64(timeline.base),
        "steps": [{"t": s.t, "u": b64(s.update), "a": None} for s in timeline.steps],
        "authors": [],
    }
    # Forward, back past checkpoints, to the very start, between steps, past the end.
    seconds = [0.0, 3.1, 20.0, 49.75, 10.0, 0.1, 30.6, 30.5, 30.49, -1.0, 1000.0, 16.0, 15.99]
    done = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT],
        input=json.dumps({"timeline": answer, "seconds": seconds}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    expected = [code_at(timeline, s) for s in seconds]
    assert shown == expected
    assert shown[0] == "def kata():\n    return 42\n"
    assert shown[1] != shown[0] != shown[2]
