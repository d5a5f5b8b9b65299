"""Driving the web app in real Chromium: finding the browser, axe-core, screenshots.

The browser is Debian's ``chromium`` (Playwright's own download is not used), axe-core comes
from ``web/node_modules`` (``npm ci`` in ``web/``), and screenshots go to the test run's
temporary directory, and to ``docs/screens/`` as well when ``POCDOJO_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
DOCS_SCREENS = REPO / "docs" / "screens"
SCREENSHOTS_ENV = "POCDOJO_SCREENSHOTS"
IMPACTS = ("serious", "critical")


def chromium_path() -> str | None:
    """The system Chromium, if installed (``CHROMIUM`` may name another one)."""
    named = os.environ.get("CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now.

    axe is evaluated through the DevTools protocol, which the page's Content-Security-Policy
    does not govern, so the page under test keeps its policy.
    """
    if not AXE.is_file():
        pytest.skip("axe-core is not installed: run `npm ci` in web/")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;undefined")
    result: dict[str, Any] = page.evaluate(
        "async () => await window.axe.run(document, { resultTypes: ['violations'] })"
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in IMPACTS
    ]


def assert_accessible(page: Page, screen: str) -> None:
    """No serious or critical axe-core violation on ``screen``."""
    found = axe_violations(page)
    assert found == [], f"{screen}: {found}"


def screenshot(page: Page, shots: Path, name: str) -> None:
    """Save a screenshot of the page into ``shots`` (and ``docs/screens`` when asked)."""
    shots.mkdir(parents=True, exist_ok=True)
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if os.environ.get(SCREENSHOTS_ENV) == "1":
        DOCS_SCREENS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENS / f"{name}.png")


def editor_text(page: Page) -> str:
    """The text the page's editor holds (CodeMirror's document, cursor labels aside)."""
    text: str = page.evaluate(
        """() => [...document.querySelector('.editor').shadowRoot
                .querySelectorAll('.cm-content .cm-line')].map((line) => {
            const copy = line.cloneNode(true)
            copy.querySelectorAll('.cm-ySelectionInfo').forEach((label) => label.remove())
            return copy.textContent.replaceAll('\\u2060', '')
        }).join('\\n')"""
    )
    return text


def wait_until(
    page: Page,
    check: Callable[[], bool],
    what: str,
    seen: Callable[[], str] | None = None,
    seconds: float = 15,
) -> None:
    """Poll what the user sees until ``check`` holds; ``seen`` tells what was there instead."""
    for _ in range(int(seconds * 10)):
        if check():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"gave up waiting: {what}" + (f"; saw {seen()}" if seen else ""))
