"""The room's connection indicator while its server goes away and comes back."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import Engines
from tests.servers import free_port, serving
from tests.web.browser import editor_text, wait_until
from tests.web.conftest import Site, serve_env

pytestmark = pytest.mark.timeout(240)

# Every text the connection indicator shows, in order, as the page changes it.
WATCH_STATUS = """() => {
    window.statusSeen = []
    const status = document.querySelector('.connection')
    new MutationObserver(() => window.statusSeen.push(status.textContent))
        .observe(status, { childList: true, characterData: true, subtree: true })
}"""


def test_the_room_shows_reconnecting_and_resyncing_and_keeps_offline_edits(
    engines: Engines, browser: Browser, tmp_path: Path
) -> None:
    env, port = serve_env(engines), free_port()
    with serving(tmp_path / "a", env, tmp_path / "a-logs", port) as first:
        first.wait_until_healthy()
        site = Site(first, browser)
        host = site.tenant()
        poc_id = site.poc(host, "Roman numerals")
        created = site.rest(
            "POST",
            "/v1/dojos/sessions",
            {"title": "Numerals kata", "pocId": poc_id, "initialCode": "I = 1\n"},
            host["token"],
        )
        page = site.signed_in(host, f"/dojos/{created['sessionId']}?code={created['joinCode']}")
        expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
        page.evaluate(WATCH_STATUS)
        page.locator(".cm-content").click()
        page.keyboard.press("Control+End")
        page.keyboard.type("V = 5\n")
        wait_until(page, lambda: "V = 5" in editor_text(page), "the first edit")
        first.interrupt()  # closes every socket with 1001: clients reconnect
        expect(page.get_by_role("status").filter(has_text="Reconnecting…")).to_be_visible()
        page.keyboard.type("X = 10\n")  # typed while no server is there

    with serving(tmp_path / "b", env, tmp_path / "b-logs", port) as second:
        second.wait_until_healthy()
        expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible(
            timeout=30_000
        )
        seen = page.evaluate("() => window.statusSeen")
        assert "Reconnecting…" in seen
        assert "Resyncing…" in seen, seen
        # What was typed offline reached the server: a fresh load of the room has it.
        page.reload()
        expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
        wait_until(page, lambda: "X = 10" in editor_text(page), "the offline edit, stored")
        assert "V = 5" in editor_text(page)
        page.context.close()
