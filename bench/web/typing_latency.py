"""Typing latency between two browsers in one dojo room: a keystroke in one Chromium page,
until the character is in the other page's editor.

Run by hand from the repository root (needs Playwright for Python and a system Chromium)::

    .venv/bin/python bench/web/typing_latency.py                 # 200 keystrokes, 50 ms apart
    .venv/bin/python bench/web/typing_latency.py --keystrokes 500 --interval 0.03

What one run does:

1. Starts embedded PostgreSQL and Valkey under ``--data-dir`` and ``pocdojo serve`` on them on
   127.0.0.1 (as ``bench/realtime`` does), then over REST: a tenant, its admin (the host), a
   second user, a POC and a dojo session.
2. Launches one headless Chromium with two browser contexts (two people): each logs in
   through the login screen and opens the join link ``/dojos/{id}?code=...``, and waits for
   "Connected" and the starting code in its editor (CodeMirror 6 + y-codemirror.next).
3. In the host's page, a capture-phase ``keydown`` listener records when each key reaches the
   page; in the guest's page, a ``MutationObserver`` on the editor's content records, after
   every DOM change, when the typed line first holds k characters (remote-cursor labels left
   out). Python presses ``--keystrokes`` keys (``page.keyboard.type``, a cycling alphabet) at
   the end of a line of its own, one every ``--interval`` seconds on a fixed schedule, not
   waiting for receipts. Latency of keystroke k = receiver's time for k - sender's keydown k.
4. Checks that both editors hold exactly the typed text, then prints p50/p95/p99/max, the
   server's fan-out histogram (``pocdojo_fanout_latency_seconds`` from ``/metrics``, the
   difference over the typing window) and the load average before and after.

The clock: both pages stamp ``performance.timeOrigin + performance.now()``. The renderers
of one Chromium read one monotonic clock, but each page's time origin is turned into epoch
milliseconds on its own, so rather than assume they agree the script measures each page's
offset against Python's ``time.time()`` (best of 30 ``page.evaluate`` round trips, the
midpoint) and corrects the receiver's stamps by the difference; that difference and its
uncertainty (half the best round trips) are printed. "Rendered" means in the receiving
page's DOM (what a paint shows next); the paint itself is not waited for.

Everything is stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import string
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "realtime"))

from _targets import (
    PASSWORD,
    _api,
    _ready,
    engines,
    load_average,
    log,
    pocdojo_server,
    revision,
)

STARTING_CODE = "def kata():\n    return 42\n"
ALPHABET = string.ascii_lowercase + string.digits

# Sender: when each key reached the page.
SENDER_JS = """() => {
  window.__sent = []
  document.addEventListener('keydown', () => {
    window.__sent.push(performance.timeOrigin + performance.now())
  }, { capture: true })
}"""

# Receiver: after each DOM change of the editor, how many characters the typed line holds;
# the first time it holds k, stamp k (every k up to it, if several came in one change).
RECEIVER_JS = """(prefix) => {
  const root = document.querySelector('.editor').shadowRoot
  const content = root.querySelector('.cm-content')
  window.__got = []
  const lineText = (line) => {
    const copy = line.cloneNode(true)
    copy.querySelectorAll('.cm-ySelectionInfo').forEach((label) => label.remove())
    return copy.textContent.replaceAll('\\u2060', '')
  }
  const check = () => {
    const now = performance.timeOrigin + performance.now()
    for (const line of content.querySelectorAll('.cm-line')) {
      const text = lineText(line)
      if (!text.startsWith(prefix)) continue
      const have = text.length - prefix.length
      while (window.__got.length < have) window.__got.push(now)
      return
    }
  }
  window.__observer = new MutationObserver(check)
  window.__observer.observe(content, { childList: true, subtree: true, characterData: true })
}"""

EDITOR_TEXT_JS = """() => [...document.querySelector('.editor').shadowRoot
    .querySelectorAll('.cm-content .cm-line')].map((line) => {
  const copy = line.cloneNode(true)
  copy.querySelectorAll('.cm-ySelectionInfo').forEach((label) => label.remove())
  return copy.textContent.replaceAll('\\u2060', '')
}).join('\\n')"""

CLOCK_JS = "() => performance.timeOrigin + performance.now()"


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# --- setup over REST ---------------------------------------------------------------------------


async def make_room(port: int) -> dict[str, str]:
    """A tenant, its admin (host), one more user, a POC and a dojo: what the pages need."""
    import aiohttp

    tag = uuid.uuid4().hex[:8]
    domain = f"typing-{tag}.example"
    host, guest = f"host{tag}", f"guest{tag}"
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", timeout=timeout) as http:
        await _ready(http)
        await _api(http, "POST", "/v1/tenants", {
            "name": "Typing Bench", "domain": domain, "contactEmail": f"ops@{domain}",
            "plan": "enterprise",
            "admin": {"username": host, "email": f"{host}@{domain}", "fullName": "Bench Host",
                      "password": PASSWORD},
        })  # fmt: skip
        body = {"username": host, "password": PASSWORD, "tenantId": domain}
        login = await _api(http, "POST", "/v1/auth/login", body)
        token = login["token"]
        await _api(http, "POST", "/v1/users/register", {
            "username": guest, "password": PASSWORD, "email": f"{guest}@{domain}",
            "fullName": "Bench Guest", "tenantId": login["tenantId"], "role": "user",
        }, token)  # fmt: skip
        poc = await _api(http, "POST", "/v1/pocs", {
            "title": "Typing bench POC", "description": "two browsers typing",
            "language": "Python", "tags": ["bench"], "userId": login["userId"],
            "tenantId": login["tenantId"],
        }, token)  # fmt: skip
        dojo = await _api(http, "POST", "/v1/dojos/sessions", {
            "title": "Typing kata", "pocId": poc["pocId"], "initialCode": STARTING_CODE,
            "maxParticipants": 2,
        }, token)  # fmt: skip
    return {
        "domain": domain,
        "host": host,
        "guest": guest,
        "link": f"/dojos/{dojo['sessionId']}?code={dojo['joinCode']}",
    }


def fanout_histogram(port: int) -> dict[float, float]:
    """Cumulative bucket counts of ``pocdojo_fanout_latency_seconds`` (le -> count)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("pocdojo_fanout_latency_seconds_bucket{"):
            labels, _, value = line.rpartition(" ")
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            found[float("inf") if le == "+Inf" else float(le)] = float(value)
    return found


def histogram_quantile(buckets: dict[float, float], q: float) -> float:
    """Prometheus-style quantile from cumulative buckets (linear inside a bucket)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return float("nan")
    target = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= target:
            if bound == float("inf"):
                return previous_bound
            inside = count - previous_count
            share = (target - previous_count) / inside if inside else 1.0
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


# --- the browsers ------------------------------------------------------------------------------


def chromium_path() -> str | None:
    """``CHROMIUM`` if set, else the first Chromium on ``PATH``."""
    import shutil

    names = ("chromium", "chromium-browser", "google-chrome")
    return os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, names)), None)


def clock_offset(page: Any, rounds: int = 30) -> tuple[float, float]:
    """The page's clock minus Python's ``time.time()``, in ms, from the round trip with the
    smallest duration; and half that duration (the uncertainty)."""
    best = (float("inf"), 0.0)
    for _ in range(rounds):
        before = time.time() * 1000
        stamp = page.evaluate(CLOCK_JS)
        after = time.time() * 1000
        trip = after - before
        if trip < best[0]:
            best = (trip, stamp - (before + after) / 2)
    return best[1], best[0] / 2


def open_room(browser: Any, base: str, room: dict[str, str], user: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{base}/login")
    page.get_by_label("Company domain").fill(room["domain"])
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="POCs", level=1).wait_for()
    page.goto(base + room["link"])
    page.get_by_role("heading", name="Typing kata").wait_for()
    page.get_by_role("status").filter(has_text="Connected").wait_for()
    page.wait_for_function(f"() => ({EDITOR_TEXT_JS})().includes('return 42')", timeout=30_000)
    return page


def run(args: argparse.Namespace) -> int:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise SystemExit("no Chromium found (Debian: apt-get install chromium; or CHROMIUM=...)")
    data_dir = Path(args.data_dir).expanduser().resolve()
    started_load = load_average()
    log(f"load average {started_load}; data under {data_dir}")
    with engines(data_dir) as urls, pocdojo_server(urls, data_dir) as server:
        port = server.port
        base = f"http://127.0.0.1:{port}"
        room = asyncio.run(make_room(port))
        log(f"room ready on port {port}")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True)
            try:
                sender = open_room(browser, base, room, room["host"])
                receiver = open_room(browser, base, room, room["guest"])
                # A line of its own at the end for the typed text, marked so the receiver
                # finds it.
                prefix = "# typed: "
                sender.locator(".cm-content").click()
                sender.keyboard.press("Control+End")
                sender.keyboard.type(prefix)
                receiver.wait_for_function(
                    f"() => ({EDITOR_TEXT_JS})().includes({json.dumps(prefix)})"
                )
                time.sleep(1.0)
                sender.evaluate(SENDER_JS)
                receiver.evaluate(RECEIVER_JS, prefix)
                send_offset, send_err = clock_offset(sender)
                recv_offset, recv_err = clock_offset(receiver)
                typed = "".join(ALPHABET[i % len(ALPHABET)] for i in range(args.keystrokes))
                before_hist = fanout_histogram(port)
                load_before = load_average()
                log(f"typing {args.keystrokes} keys, one every {args.interval * 1000:.0f} ms")
                python_sent = []
                next_at = time.monotonic()
                for char in typed:
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    python_sent.append(time.time() * 1000)
                    sender.keyboard.type(char)
                    next_at += args.interval
                deadline = time.monotonic() + args.drain
                while time.monotonic() < deadline:
                    if receiver.evaluate("() => window.__got.length") >= len(typed):
                        break
                    time.sleep(0.1)
                load_after = load_average()
                after_hist = fanout_histogram(port)
                sent = sender.evaluate("() => window.__sent")
                got = receiver.evaluate("() => window.__got")
                send_offset2, send_err2 = clock_offset(sender)
                recv_offset2, recv_err2 = clock_offset(receiver)
                sender_text = sender.evaluate(EDITOR_TEXT_JS)
                receiver_text = receiver.evaluate(EDITOR_TEXT_JS)
            finally:
                browser.close()

    expected_line = prefix + typed
    same = sender_text == receiver_text and expected_line in receiver_text.split("\n")
    skew = recv_offset - send_offset  # receiver clock - sender clock, ms
    skew2 = recv_offset2 - send_offset2
    n = min(len(sent), len(got))
    latencies = [got[i] - skew - sent[i] for i in range(n)]
    from_python = [got[i] - recv_offset - python_sent[i] for i in range(min(n, len(python_sent)))]
    delta = {k: after_hist.get(k, 0.0) - before_hist.get(k, 0.0) for k in after_hist}
    fan_count = delta.get(float("inf"), 0.0)

    print(f"revision {revision()}; Chromium {executable}; {args.keystrokes} keystrokes, "
          f"one every {args.interval * 1000:.0f} ms")  # fmt: skip
    print(f"load average: {started_load} at start, {load_before} before typing, "
          f"{load_after} after")  # fmt: skip
    print(f"clock: receiver - sender = {skew:+.3f} ms before typing (±{send_err + recv_err:.3f}),"
          f" {skew2:+.3f} ms after (±{send_err2 + recv_err2:.3f})")  # fmt: skip
    print(f"keydowns recorded {len(sent)}, receipts {len(got)}, "
          f"final texts identical and complete: {same}")  # fmt: skip

    def row(name: str, values: Sequence[float]) -> str:
        if not values:
            return f"{name:<34} (none)"
        return (f"{name:<34} {len(values):>5} {percentile(values, 50):>8.1f} "
                f"{percentile(values, 95):>8.1f} {percentile(values, 99):>8.1f} "
                f"{max(values):>8.1f} {statistics.fmean(values):>8.1f}")  # fmt: skip

    print(f"{'ms':<34} {'n':>5} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} {'mean':>8}")
    print(row("keydown -> other page's DOM", latencies))
    print(row("Python's key call -> other's DOM", from_python))
    if fan_count:
        quantiles = " ".join(
            f"p{int(q * 100)} {1000 * histogram_quantile(delta, q):.2f}" for q in (0.5, 0.95, 0.99)
        )
        under = " ".join(
            f"≤{k * 1000:g}ms {100 * v / fan_count:.0f}%"
            for k, v in sorted(delta.items())
            if k != float("inf") and k <= 0.01
        )
        print(f"server fan-out (pocdojo_fanout_latency_seconds, typing window): "
              f"{fan_count:.0f} messages, {quantiles} ms (interpolated in buckets); "
              f"{under}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({
            "keystrokes": args.keystrokes, "interval": args.interval, "latencies_ms": latencies,
            "from_python_ms": from_python, "skew_ms": [skew, skew2], "identical": same,
            "fanout_buckets": {str(k): v for k, v in delta.items()},
            "load": [started_load, load_before, load_after],
        }, indent=1))  # fmt: skip
    if not same or len(got) < args.keystrokes or len(sent) < args.keystrokes:
        print("FAILED: not every keystroke arrived, or the texts differ")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--keystrokes", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between keys")
    parser.add_argument("--drain", type=float, default=10.0, help="wait for late receipts (s)")
    parser.add_argument("--data-dir", default=".bench/web-typing")
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
