"""Randori in Chromium: three people in one room, the host starts it with a short period.

The pilot shown on every page changes on time, only the pilot's editor takes typing, what the
pilot types reaches every page and the stored document, what the others try to type reaches no
one, and no page reconnects: the editor turns read-only and back in place, on open sockets.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.web.browser import assert_accessible, editor_text, screenshot, wait_until
from tests.web.conftest import Site

pytestmark = pytest.mark.timeout(240)

PERIOD = 3  # seconds a turn lasts
TURNS = 4  # turns checked: each of the three pilots, then the first again
ON_TIME = 1.0  # seconds a page may show a turn before or after its announced start
STARTING_CODE = "".join(f"# line {n}\n" for n in range(60))

# Every WebSocket the page opens and every close event it sees, from before the app loads.
LOG_SOCKETS = """(() => {
    const Native = window.WebSocket
    window.socketLog = []
    window.WebSocket = class extends Native {
        constructor(...args) {
            super(...args)
            window.socketLog.push('open ' + String(args[0]).split('?')[0])
            this.addEventListener('close', (event) => window.socketLog.push('close ' + event.code))
        }
    }
})()"""

# Each turn the page shows (number, pilot's name, when), and every change of the connection
# indicator.
WATCH = """() => {
    window.turnsSeen = []
    window.statusSeen = []
    const panel = document.querySelector('.randori')
    new MutationObserver(() => {
        const turn = panel.dataset.turn
        const last = window.turnsSeen[window.turnsSeen.length - 1]
        if (turn === undefined || (last && last.turn === Number(turn))) return
        window.turnsSeen.push({
            turn: Number(turn),
            pilot: panel.querySelector('.randori-turn .pilot').textContent,
            endsAt: panel.dataset.turnEndsAt,
            at: Date.now(),
        })
    }).observe(panel, { subtree: true, childList: true, characterData: true, attributes: true })
    const status = document.querySelector('.connection')
    new MutationObserver(() => window.statusSeen.push(status.textContent))
        .observe(status, { childList: true, characterData: true, subtree: true })
}"""


def enter(site: Site, account: dict[str, str], room: str) -> Page:
    """A page logged in as ``account``, in the room, connected, watched."""
    page = site.page()
    page.context.add_init_script(LOG_SOCKETS)
    site.log_in(page, account)
    page.goto(room)
    expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
    wait_until(page, lambda: "# line 59" in editor_text(page), "the starting code")
    page.evaluate(WATCH)
    return page


def showing_turn(page: Page, turn: int) -> None:
    page.wait_for_function(
        "turn => document.querySelector('.randori').dataset.turn === turn",
        arg=str(turn),
        timeout=(PERIOD + 5) * 1000,
    )


def type_at_end(page: Page, text: str) -> None:
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text)


def test_randori_rotates_the_pilot_and_only_the_pilot_types(site: Site, shots: Path) -> None:
    host = site.tenant()
    guests = [site.user(host), site.user(host)]
    poc_id = site.poc(host, "Game of life")
    created = site.rest(
        "POST",
        "/v1/dojos/sessions",
        {"title": "Life kata", "pocId": poc_id, "initialCode": STARTING_CODE},
        host["token"],
    )
    session_id = created["sessionId"]
    room = f"{site.url}/dojos/{session_id}?code={created['joinCode']}"
    # Joining order is randori order: the host, then each guest.
    accounts = [host, *guests]
    pages = [enter(site, account, room) for account in accounts]
    names = [account["username"] for account in accounts]
    for page in pages:
        expect(page.locator(".randori")).to_contain_text("Randori is off.")
        expect(page.locator(".cm-content")).to_have_attribute("aria-readonly", "false")

    host_page = pages[0]
    host_page.get_by_label("Unit").select_option("seconds")
    host_page.get_by_label("Turn length").fill(str(PERIOD))
    host_page.get_by_label("Turn length").press("Enter")  # the keyboard starts it

    for turn in range(TURNS):
        for page in pages:
            showing_turn(page, turn)
        pilot = turn % len(pages)
        copilot = (turn + 1) % len(pages)
        for index, page in enumerate(pages):
            shown = page.locator(".randori-turn")
            expect(shown.locator(".pilot")).to_have_text(
                names[pilot] + (" (you)" if index == pilot else "")
            )
            expect(shown.locator(".copilot")).to_have_text(
                names[copilot] + (" (you)" if index == copilot else "")
            )
            expect(
                page.get_by_role("list", name="Randori order").get_by_role("listitem")
            ).to_have_text(
                [
                    name + (" (pilot)" if n == pilot else " (co-pilot)" if n == copilot else "")
                    for n, name in enumerate(names)
                ]
            )
            readonly = page.locator(".cm-content").get_attribute("aria-readonly")
            assert readonly == ("false" if index == pilot else "true"), (turn, index, readonly)
            note = page.get_by_text("Randori: the pilot types.")
            assert note.is_visible() == (index != pilot), (turn, index)

        if turn == 0:
            # The last guest follows the pilot, who types at the end of a long document.
            pages[2].get_by_label("Follow the pilot").check()
            assert pages[2].evaluate("() => window.scrollY") == 0
            assert pages[1].evaluate("() => window.scrollY") == 0
        type_at_end(pages[pilot], f"\n# turn {turn}")
        if turn == 0:
            wait_until(
                pages[2],
                lambda: pages[2].evaluate("() => window.scrollY") > 0,
                "the follower's page to scroll to the pilot's cursor",
                seconds=PERIOD / 2,
            )
            # The other guest, not following, stayed where they were.
            assert pages[1].evaluate("() => window.scrollY") == 0
        for index, page in enumerate(pages):
            if index != pilot:
                type_at_end(page, f"nope{turn}")
        for page in pages:
            wait_until(
                page,
                lambda page=page, turn=turn: f"# turn {turn}" in editor_text(page),  # type: ignore[misc]
                f"the pilot's text of turn {turn}",
                lambda page=page: repr(editor_text(page)[-80:]),  # type: ignore[misc]
                seconds=PERIOD,
            )
        for page in pages:
            assert "nope" not in editor_text(page)

    # Randori on: accessible for the host's controls and a co-pilot's panel.
    assert_accessible(host_page, "dojo room, randori (host)")
    assert_accessible(pages[1], "dojo room, randori (guest)")
    pages[1].evaluate("() => window.scrollTo(0, 0)")
    screenshot(pages[1], shots, "dojo-randori")

    host_page.get_by_role("button", name="Stop randori").click()
    for page in pages:
        expect(page.locator(".randori")).to_contain_text("Randori is off.")
        expect(page.locator(".cm-content")).to_have_attribute("aria-readonly", "false")

    # Every page showed each turn, with its pilot, within ON_TIME of its announced start.
    for index, page in enumerate(pages):
        seen: list[dict[str, Any]] = page.evaluate("() => window.turnsSeen")[:TURNS]
        assert [s["turn"] for s in seen] == list(range(TURNS)), (index, seen)
        for s in seen:
            pilot = s["turn"] % len(pages)
            assert s["pilot"] == names[pilot] + (" (you)" if index == pilot else "")
        for before, now in itertools.pairwise(seen):
            starts = datetime.fromisoformat(before["endsAt"]).timestamp()
            assert abs(now["at"] / 1000 - starts) <= ON_TIME, (index, before, now)

    # The same two sockets all along, never closed; the indicator never left "Connected".
    for index, page in enumerate(pages):
        log = page.evaluate("() => window.socketLog")
        assert len(log) == 2, (index, log)
        assert all(entry.startswith("open ") for entry in log), (index, log)
        assert page.evaluate("() => window.statusSeen") == [], index
        expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible()

    # Every page holds the same text: the pilots' and nothing of the others'.
    final = editor_text(host_page)
    for page in pages:
        assert editor_text(page) == final
    assert final.startswith(STARTING_CODE)
    assert [line for line in final.splitlines() if line.startswith("# turn")] == [
        f"# turn {turn}" for turn in range(TURNS)
    ]
    assert "nope" not in final

    # And so does the stored document.
    site.rest("POST", f"/v1/dojos/sessions/{session_id}/end", {}, host["token"])
    stored = site.rest("GET", f"/v1/dojos/sessions/{session_id}/snapshots", token=host["token"])
    assert stored["snapshots"], stored
    assert stored["snapshots"][-1]["code"] == final
