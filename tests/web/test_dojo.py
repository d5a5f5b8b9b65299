"""The dojo room in Chromium: several people in one session, each in a browser context."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web.browser import assert_accessible, editor_text, screenshot, wait_until
from tests.web.conftest import Site

pytestmark = pytest.mark.timeout(240)

STARTING_CODE = "def kata():\n    return 42\n"


def open_dojo(site: Site) -> tuple[Page, Page, dict[str, str], dict[str, str], str]:
    """The host starts a dojo from a POC's page; a guest opens its join link.

    Returns the host's page, the guest's page, both accounts and the join link.
    """
    host = site.tenant()
    guest = site.user(host)
    host_page, _ = site.on_new_poc(host, "Bowling score")
    host_page.get_by_role("link", name="Start a dojo").click()
    expect(host_page.get_by_role("heading", name="New dojo")).to_be_visible()
    assert_accessible(host_page, "new dojo")
    host_page.get_by_label("Title").fill("Bowling kata")
    host_page.get_by_label("Starting code").fill(STARTING_CODE)
    host_page.get_by_role("button", name="Create dojo").click()
    expect(host_page.get_by_role("heading", name="Bowling kata")).to_be_visible()
    expect(host_page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
    link = host_page.get_by_label("Join link").input_value()
    assert "/dojos/" in link
    assert "code=" in link

    guest_page = site.signed_in(guest)
    guest_page.goto(link)
    expect(guest_page.get_by_role("heading", name="Bowling kata")).to_be_visible()
    expect(guest_page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
    wait_until(guest_page, lambda: "return 42" in editor_text(guest_page), "the starting code")
    return host_page, guest_page, host, guest, link


def test_two_people_type_at_once_and_see_each_other(site: Site, shots: Path) -> None:
    host_page, guest_page, host, guest, _ = open_dojo(site)
    host_page.locator(".cm-content").click()
    host_page.keyboard.press("Control+End")
    guest_page.locator(".cm-content").click()
    guest_page.keyboard.press("Control+Home")
    # Interleaved keystrokes: neither waits for the other's to arrive.
    for host_key, guest_key in zip("# host was here", "# guest typed!!", strict=True):
        host_page.keyboard.type(host_key)
        guest_page.keyboard.type(guest_key)
    guest_page.keyboard.press("Enter")

    def converged() -> bool:
        mine, theirs = editor_text(host_page), editor_text(guest_page)
        return mine == theirs and "# host was here" in mine and "# guest typed!!" in mine

    wait_until(
        host_page,
        converged,
        "both editors to hold both texts",
        lambda: f"{editor_text(host_page)!r} / {editor_text(guest_page)!r}",
    )
    assert "return 42" in editor_text(host_page)

    # Each sees the other's cursor, labelled with their name.
    expect(host_page.locator(".cm-ySelectionInfo", has_text=guest["username"])).to_be_visible()
    expect(guest_page.locator(".cm-ySelectionInfo", has_text=host["username"])).to_be_visible()

    # Chat both ways, shown as text.
    guest_page.get_by_label("Message", exact=True).fill("hello <i>host</i>")
    guest_page.get_by_role("button", name="Send").click()
    expect(host_page.get_by_role("log").get_by_text("hello <i>host</i>")).to_be_visible()
    host_page.get_by_label("Message", exact=True).fill("welcome, guest")
    host_page.keyboard.press("Enter")
    expect(guest_page.get_by_role("log").get_by_text("welcome, guest")).to_be_visible()
    assert host_page.locator(".chat-log i").count() == 0

    # Participants with their roles and online state.
    people = host_page.get_by_role("list", name="Participants")
    expect(people.get_by_role("listitem").filter(has_text=guest["username"])).to_contain_text(
        "participant"
    )
    expect(people.get_by_role("listitem").filter(has_text=guest["username"])).to_contain_text(
        "online"
    )

    # Undo takes back one's own edits only: all of the guest's, none of the host's.
    guest_page.locator(".cm-content").click()
    for _ in range(40):
        if "# guest" not in editor_text(guest_page):
            break
        guest_page.keyboard.press("Control+z")
    wait_until(
        host_page,
        lambda: "# guest" not in editor_text(host_page),
        "the guest's undo to reach the host",
        lambda: repr(editor_text(host_page)),
    )
    assert "# host was here" in editor_text(guest_page)
    assert "# host was here" in editor_text(host_page)

    assert_accessible(host_page, "dojo room (host)")
    assert_accessible(guest_page, "dojo room (guest)")
    screenshot(host_page, shots, "dojo-room")


def test_an_observer_cannot_type(site: Site) -> None:
    host_page, _, host, _, link = open_dojo(site)
    watcher = site.user(host)
    page = site.signed_in(watcher)
    page.goto(link + "&role=observer")
    expect(page.get_by_text("You are observing: the editor is read-only.")).to_be_visible()
    wait_until(page, lambda: "return 42" in editor_text(page), "the code, read-only")
    content = page.locator(".cm-content")
    expect(content).to_have_attribute("aria-readonly", "true")
    before = editor_text(page)
    content.click()
    page.keyboard.type("sneaky")
    page.wait_for_timeout(500)
    assert editor_text(page) == before
    assert "sneaky" not in editor_text(host_page)
    assert_accessible(page, "dojo room (observer)")


def test_a_reload_mid_session_loses_nothing_typed(site: Site) -> None:
    host_page, guest_page, _, _, _ = open_dojo(site)
    guest_page.locator(".cm-content").click()
    guest_page.keyboard.press("Control+End")
    guest_page.keyboard.type("kept = True")
    guest_page.reload()
    expect(guest_page.get_by_role("heading", name="Bowling kata")).to_be_visible()
    # The chat's history comes back too; asking for earlier messages finds none here.
    host_page.get_by_label("Message", exact=True).fill("said before the reload")
    host_page.get_by_role("button", name="Send").click()
    expect(host_page.get_by_role("log").get_by_text("said before the reload")).to_be_visible()
    guest_page.reload()
    expect(guest_page.get_by_role("log").get_by_text("said before the reload")).to_be_visible()
    guest_page.get_by_role("button", name="Show earlier messages").click()
    expect(guest_page.get_by_role("button", name="Show earlier messages")).to_be_hidden()
    expect(guest_page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
    wait_until(guest_page, lambda: "kept = True" in editor_text(guest_page), "the reloaded text")
    wait_until(host_page, lambda: "kept = True" in editor_text(host_page), "the host's copy")
    assert editor_text(guest_page) == editor_text(host_page)


def test_the_host_ends_the_session_and_both_see_it(site: Site, shots: Path) -> None:
    host_page, guest_page, _, _, _ = open_dojo(site)
    host_page.get_by_role("button", name="End session").click()
    # Whichever comes first, the server's answer or its closing the sockets with 4410.
    ended = re.compile(r"You ended this session\.|This session has ended\.")
    expect(host_page.get_by_role("alert").filter(has_text=ended)).to_be_visible()
    expect(
        guest_page.get_by_role("alert").filter(has_text="This session has ended.")
    ).to_be_visible()
    expect(guest_page.get_by_role("status").filter(has_text="Closed")).to_be_visible()
    expect(guest_page.locator(".cm-content")).to_have_attribute("aria-readonly", "true")
    expect(guest_page.get_by_role("button", name="Send")).to_be_disabled()
    screenshot(guest_page, shots, "dojo-ended")
    assert_accessible(guest_page, "dojo room, ended")
    guest_page.reload()
    expect(guest_page.get_by_role("heading", name="This dojo has ended")).to_be_visible()


def test_a_room_asks_for_the_join_code_it_lacks(site: Site) -> None:
    host = site.tenant()
    guest = site.user(host)
    poc_id = site.poc(host, "Word wrap")
    created = site.rest(
        "POST", "/v1/dojos/sessions", {"title": "Wrap kata", "pocId": poc_id}, host["token"]
    )
    page = site.signed_in(guest, f"/dojos/{created['sessionId']}")
    expect(page.get_by_role("heading", name="Join this dojo")).to_be_visible()
    assert_accessible(page, "join code")
    page.get_by_label("Join code").fill("WRONG")
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong join code")
    page.get_by_label("Join code").fill(created["joinCode"])
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_role("heading", name="Wrap kata")).to_be_visible()


def test_a_role_change_turns_the_editor_read_only_in_place(site: Site) -> None:
    host_page, guest_page, host, guest, _ = open_dojo(site)
    content = guest_page.locator(".cm-content")
    site.rest("PATCH", f"/v1/users/{guest['userId']}", {"role": "viewer"}, host["token"])
    expect(guest_page.get_by_text("You are observing: the editor is read-only.")).to_be_visible()
    expect(content).to_have_attribute("aria-readonly", "true")
    site.rest("PATCH", f"/v1/users/{guest['userId']}", {"role": "user"}, host["token"])
    expect(content).to_have_attribute("aria-readonly", "false")
    content.click()
    guest_page.keyboard.press("Control+End")
    guest_page.keyboard.type("# back")
    wait_until(host_page, lambda: "# back" in editor_text(host_page), "the guest's edit")
    # The same sockets throughout: the page never had to reconnect.
    expect(guest_page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
