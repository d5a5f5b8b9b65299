"""Voice and recording in Chromium: two people join the call and hear each other over real
peer connections; the host records, the others see it, the recording is mixed; the replay
player shows the code of any second.

Chromium runs with its fake microphone (a tone with a beep each second) and grants it without
asking. What the pages receive is read from their real ``RTCPeerConnection`` statistics
through the room's ``window.pocdojoVoice.stats()``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from pocdojo.crdt.timeline import Step, Timeline, code_at
from tests.conftest import Engines
from tests.servers import serving
from tests.turn import find_turnserver, turn_server
from tests.web.browser import (
    assert_accessible,
    chromium_path,
    editor_text,
    screenshot,
    wait_until,
)
from tests.web.conftest import Site, serve_env

pytestmark = pytest.mark.timeout(300)

STARTING_CODE = "def kata():\n    return 42\n"
# A fake microphone granted without a prompt; the replay's audio may start without a click.
MEDIA_FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium with a fake microphone that needs no permission prompt."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=MEDIA_FLAGS
        )
        yield launched
        launched.close()


def stats(page: Page) -> dict[str, Any]:
    """The page's voice statistics: per peer, the audio bytes received and sent."""
    found: dict[str, Any] = page.evaluate("() => window.pocdojoVoice.stats()")
    return found


def received_from(page: Page, user_id: str) -> int:
    peer = stats(page)["peers"].get(user_id)
    return int(peer["bytesReceived"]) if peer else 0


def hears_more(page: Page, user_id: str, seconds: float = 20) -> None:
    """Wait until the audio received from ``user_id`` grows past what it is now (and is
    more than nothing)."""
    start = received_from(page, user_id)
    wait_until(
        page,
        lambda: received_from(page, user_id) > max(start, 0) + 1000,
        f"audio from {user_id} to keep arriving",
        lambda: str(stats(page)),
        seconds=seconds,
    )


def in_room(site: Site, account: dict[str, str], room: str) -> Page:
    """A page signed in as ``account``, in the dojo, connected, microphone allowed."""
    page = site.page()
    page.context.grant_permissions(["microphone"], origin=site.url)
    site.log_in(page, account)
    page.goto(room)
    expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
    wait_until(page, lambda: "return 42" in editor_text(page), "the starting code")
    return page


def dojo(site: Site) -> tuple[dict[str, str], dict[str, str], str, str]:
    """A host, a guest of the same tenant, a new dojo's id and its join link."""
    host = site.tenant()
    guest = site.user(host)
    poc_id = site.poc(host, "Roman numerals")
    created = site.rest(
        "POST",
        "/v1/dojos/sessions",
        {"title": "Roman kata", "pocId": poc_id, "initialCode": STARTING_CODE},
        host["token"],
    )
    room = f"{site.url}/dojos/{created['sessionId']}?code={created['joinCode']}"
    return host, guest, created["sessionId"], room


def join_voice(page: Page) -> None:
    page.get_by_role("button", name="Join voice").click()
    expect(page.get_by_text("You are in the call.")).to_be_visible()


def in_call(page: Page, username: str) -> Locator:
    """The entry of ``username`` in the page's list of who is in the call."""
    return (
        page.get_by_role("list", name="In the call")
        .get_by_role("listitem")
        .filter(has_text=username)
    )


def test_two_people_in_voice_hear_each_other(site: Site) -> None:
    host, guest, _, room = dojo(site)
    host_page = in_room(site, host, room)
    guest_page = in_room(site, guest, room)
    expect(host_page.get_by_text("Nobody is in the call.")).to_be_visible()

    join_voice(host_page)
    expect(in_call(guest_page, host["username"])).to_be_visible()
    # The fake microphone beeps: the host's voice activity shows on the guest's page. (Once
    # both are in the call, each page's echo canceller may take the other's identical beep
    # for an echo of its own, so this is seen before.)
    wait_until(
        guest_page,
        lambda: in_call(guest_page, host["username"]).get_by_text("speaking").count() > 0,
        "the guest to see the host speaking",
        lambda: f"host's page: {stats(host_page)}",
        seconds=20,
    )
    join_voice(guest_page)
    expect(in_call(host_page, guest["username"])).to_be_visible()
    expect(in_call(guest_page, guest["username"])).to_contain_text("(you)")

    # Each page receives the other's microphone, and keeps receiving it.
    hears_more(host_page, guest["userId"])
    hears_more(guest_page, host["userId"])
    hears_more(host_page, guest["userId"])
    assert host_page.locator("audio[data-user]").count() == 1

    # Muting reaches the other page; the muted person is never shown speaking.
    guest_page.get_by_role("button", name="Mute", pressed=False).click()
    expect(guest_page.get_by_role("button", name="Mute", pressed=True)).to_be_visible()
    expect(guest_page.get_by_text("You are in the call, muted.")).to_be_visible()
    expect(in_call(host_page, guest["username"]).get_by_text("muted")).to_be_visible()
    expect(in_call(host_page, guest["username"]).get_by_text("speaking")).to_have_count(0)
    assert_accessible(host_page, "dojo room, in voice")
    guest_page.get_by_role("button", name="Mute", pressed=True).click()
    expect(in_call(host_page, guest["username"]).get_by_text("muted")).to_have_count(0)

    # Leaving closes the connection on both sides.
    guest_page.get_by_role("button", name="Leave voice").click()
    expect(in_call(host_page, guest["username"])).to_have_count(0)
    wait_until(host_page, lambda: stats(host_page)["peers"] == {}, "the host to hang up")
    left = stats(guest_page)
    assert (left["inVoice"], left["peers"], left["recorder"]) == (False, {}, None)
    expect(guest_page.get_by_role("button", name="Join voice")).to_be_enabled()


# Keep the page's events sockets, so a test can drop them as a network blip would.
KEEP_SOCKETS = """(() => {
    const Native = window.WebSocket
    window.eventSockets = []
    window.WebSocket = class extends Native {
        constructor(...args) {
            super(...args)
            if (String(args[0]).includes('/events')) window.eventSockets.push(this)
        }
    }
})()"""


def test_the_call_comes_back_after_the_events_socket_drops(site: Site) -> None:
    host, guest, _, room = dojo(site)
    host_page = in_room(site, host, room)
    guest_page = site.page()
    guest_page.context.add_init_script(KEEP_SOCKETS)
    guest_page.context.grant_permissions(["microphone"], origin=site.url)
    site.log_in(guest_page, guest)
    guest_page.goto(room)
    expect(guest_page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
    join_voice(host_page)
    join_voice(guest_page)
    hears_more(host_page, guest["userId"])
    first_peer = host_page.locator("audio[data-user]").element_handle()

    # The server takes the guest out of the call when its socket closes; the guest's page
    # reconnects, says again that it is in the call, and the audio flows on a new connection.
    guest_page.evaluate("() => window.eventSockets.forEach((s) => s.close(1000))")
    wait_until(
        host_page,
        lambda: first_peer.evaluate("(a) => !a.isConnected"),
        "the host to hang up the old connection",
    )
    expect(in_call(host_page, guest["username"])).to_be_visible()
    hears_more(host_page, guest["userId"])
    hears_more(guest_page, host["userId"])
    expect(guest_page.get_by_text("You are in the call.")).to_be_visible()


def test_the_call_uses_the_turn_server_the_server_names(
    engines: Engines, browser: Browser, tmp_path: Path
) -> None:
    binary = find_turnserver()
    if binary is None:
        pytest.skip("coturn's turnserver not found (Debian package coturn; .ci/run installs it)")
    with turn_server(binary) as turn:
        env = serve_env(engines)
        env.update(TURN_URLS=turn.url, TURN_SECRET=turn.secret)
        with serving(tmp_path / "data", env, tmp_path / "logs") as server:
            server.wait_until_healthy()
            site = Site(server, browser)
            host, guest, _, room = dojo(site)
            pages = [in_room(site, host, room), in_room(site, guest, room)]
            for page in pages:
                join_voice(page)
            # Each page's connection was made with the TURN server the server named, and
            # the call works with it. Which path the call
            # takes is Chrome's choice: on one machine a direct one works, and Chrome may
            # stop gathering relayed candidates once it does, so none is asserted.
            for page, other in ((pages[0], guest), (pages[1], host)):
                hears_more(page, other["userId"])
                assert stats(page)["peers"][other["userId"]]["iceUrls"] == [turn.url]
            for page in pages:
                page.context.close()
            assert site.problems == []


def sent_to_recorder(page: Page) -> int:
    recorder = stats(page)["recorder"]
    return int(recorder["bytesSent"]) if recorder else 0


def wait_recorder_hears(page: Page, whose: str) -> None:
    """Until the page's microphone has sent the recorder peer some audio."""
    wait_until(
        page,
        lambda: sent_to_recorder(page) > 2000,
        f"{whose} microphone to reach the recorder",
        lambda: str(stats(page)),
        seconds=20,
    )


def test_the_host_records_and_the_recording_becomes_ready(site: Site, shots: Path) -> None:
    host, guest, session_id, room = dojo(site)
    host_page = in_room(site, host, room)
    guest_page = in_room(site, guest, room)
    join_voice(host_page)
    expect(guest_page.locator(".recording-indicator")).to_have_text("Not recording.")
    expect(guest_page.get_by_role("button", name="Start recording")).to_have_count(0)

    host_page.get_by_role("button", name="Start recording").click()
    for page in (host_page, guest_page):
        expect(page.locator(".recording-indicator")).to_contain_text("Recording since")
        expect(page.locator(".recording-indicator")).to_contain_text(
            f"started by {host['username']}"
        )
    # In voice while it records: the host's microphone goes to the recorder too.
    wait_recorder_hears(host_page, "the host's")
    assert stats(guest_page)["recorder"] is None  # not in voice: nothing to send

    # Joining the call while it records starts sending to the recorder as well.
    join_voice(guest_page)
    wait_recorder_hears(guest_page, "the guest's")
    assert_accessible(guest_page, "dojo room, recording")

    # Someone who opens the room while it records sees it from the start.
    late = in_room(site, site.user(host), room)
    expect(late.locator(".recording-indicator")).to_contain_text("Recording since")
    expect(in_call(late, guest["username"])).to_be_visible()
    expect(in_call(guest_page, host["username"])).to_be_visible()
    screenshot(guest_page, shots, "dojo-voice")

    _type_two_lines(guest_page, host_page, delay=120)

    host_page.get_by_role("button", name="Stop recording").click()
    for page in (host_page, guest_page):
        expect(page.locator(".recording-indicator")).to_have_text("Not recording.")
    wait_until(guest_page, lambda: stats(guest_page)["recorder"] is None, "the recorder hung up")
    assert stats(guest_page)["inVoice"] is True  # the call itself goes on

    guest_page.get_by_role("link", name="Recordings of this session").click()
    expect(guest_page.get_by_role("heading", name="Recordings of Roman kata")).to_be_visible()
    entry = guest_page.get_by_role("list", name="Recordings").get_by_role("listitem")
    expect(entry).to_have_count(1)
    expect(entry.locator(".status")).to_have_text("Ready", timeout=90_000)
    assert_accessible(guest_page, "recordings")
    screenshot(guest_page, shots, "recordings")

    [listed] = site.rest(
        "GET", f"/v1/dojos/sessions/{session_id}/recordings", token=guest["token"]
    )["recordings"]
    assert listed["status"] == "ready"
    assert sorted(listed["participants"]) == sorted([host["userId"], guest["userId"]])


def ready(site: Site, account: dict[str, str], path: str, page: Page) -> dict[str, Any]:
    """The recording at ``path`` once it is mixed (polled while the page waits)."""
    found: dict[str, Any] = {}

    def is_ready() -> bool:
        found.update(site.rest("GET", path, token=account["token"]))
        return found["status"] in ("ready", "failed")

    wait_until(page, is_ready, "the recording to be mixed", lambda: str(found), seconds=90)
    assert found["status"] == "ready", found
    return found


def shown_code(page: Page) -> str:
    return editor_text(page)


def test_the_player_shows_the_code_of_the_chosen_second(site: Site, shots: Path) -> None:
    host, guest, session_id, room = dojo(site)
    host_page = in_room(site, host, room)
    guest_page = in_room(site, guest, room)
    join_voice(host_page)
    host_page.get_by_role("button", name="Start recording").click()
    wait_recorder_hears(host_page, "the host's")
    _type_two_lines(guest_page, host_page, delay=150)
    host_page.get_by_role("button", name="Stop recording").click()
    expect(host_page.locator(".recording-indicator")).to_have_text("Not recording.")
    [listed] = site.rest(
        "GET", f"/v1/dojos/sessions/{session_id}/recordings", token=guest["token"]
    )["recordings"]
    recording_id = listed["recordingId"]
    path = f"/v1/dojos/sessions/{session_id}/recordings/{recording_id}"
    ready(site, guest, path, guest_page)

    # The second to show: on the scrubber's tenth-of-a-second grid, once "# first" was typed
    # and before "# second" was, as the server tells the code of a second.
    timeline = site.rest("GET", f"{path}/timeline", token=guest["token"])
    assert timeline["status"] == "ready"

    def server_code(at: float) -> str:
        answer = site.rest("GET", f"{path}/code?at={at}", token=guest["token"])
        code: str = answer["code"]
        return code

    # The player applies the timeline's steps up to the position (a burst of one author's
    # keys is one step, at its last key): the code it should show, computed here from the
    # same answer, is the server's own code of that second where the two meet.
    steps = [Step(s["t"], base64.b64decode(s["u"]), None) for s in timeline["steps"]]
    replayed = Timeline(base64.b64decode(timeline["base"]), steps)
    grid = sorted({math.ceil(step.t * 10) / 10 for step in steps})
    chosen = next(
        at
        for at in grid
        if "# first\n" in (c := code_at(replayed, at))
        and "# second\n" not in c
        and server_code(at) == c
    )
    expected = server_code(chosen)
    final = server_code(timeline["duration"])
    assert "# second\n" in final

    guest_page.goto(f"{site.url}/dojos/{session_id}/recordings/{recording_id}")
    expect(guest_page.get_by_role("heading", name="Replay of Roman kata")).to_be_visible()
    position = guest_page.get_by_label("Position")
    expect(position).to_have_value("0")
    wait_until(guest_page, lambda: shown_code(guest_page) == server_code(0), "the code at 0")
    assert "# first" not in shown_code(guest_page)

    # The scrubber, moved to the chosen second, shows the code of that second.
    position.fill(f"{chosen:.1f}")
    wait_until(
        guest_page,
        lambda: shown_code(guest_page) == expected,
        f"the code at {chosen} s",
        lambda: repr(shown_code(guest_page)),
    )
    assert_accessible(guest_page, "replay")
    screenshot(guest_page, shots, "replay")

    # Moving the audio moves the scrubber and the code; back again rebuilds the code.
    audio = guest_page.get_by_label("Recorded voice")
    end = float(timeline["duration"])
    audio.evaluate("(a, at) => { a.currentTime = at }", end)
    wait_until(guest_page, lambda: shown_code(guest_page) == final, "the code at the end")
    assert abs(float(position.input_value()) - end) < 0.2
    audio.evaluate("(a) => { a.currentTime = 0 }")
    wait_until(guest_page, lambda: shown_code(guest_page) == server_code(0), "the code at 0")

    # Playing advances the code with the audio.
    audio.evaluate("(a) => a.play()")
    wait_until(
        guest_page,
        lambda: "# first\n" in shown_code(guest_page),
        "the code to follow the audio",
        lambda: repr(shown_code(guest_page)),
        seconds=end + 10,
    )
    playing_at = audio.evaluate("(a) => a.currentTime")
    assert playing_at >= chosen - 0.5, playing_at


def _type_two_lines(typist: Page, other: Page, *, delay: int) -> None:
    """``# first`` then ``# second`` typed at the end of the code, until the other page has
    them."""
    typist.locator(".cm-content").click()
    typist.keyboard.press("Control+End")
    typist.keyboard.type("# first\n", delay=delay)
    typist.keyboard.type("# second\n", delay=delay)
    wait_until(other, lambda: "# second" in editor_text(other), "the typing to arrive")


def test_a_second_tab_takes_the_call_over(site: Site) -> None:
    """The host joins the call from a second tab: that tab has the call and the guest hears
    it; the first tab hangs up, says where the call went, and can take it back."""
    host, guest, _, room = dojo(site)
    first = in_room(site, host, room)
    guest_page = in_room(site, guest, room)
    join_voice(first)
    join_voice(guest_page)
    hears_more(guest_page, host["userId"])

    second = in_room(site, host, room)
    expect(second.get_by_text("You are in the call from another tab or device.")).to_be_visible()
    expect(in_call(second, host["username"])).to_contain_text("(you)")
    second.get_by_role("button", name="Join voice here").click()
    expect(second.get_by_text("You are in the call.")).to_be_visible()

    expect(first.get_by_text("this tab left it")).to_be_visible()
    expect(first.get_by_text("You are in the call from another tab or device.")).to_be_visible()
    wait_until(first, lambda: stats(first)["peers"] == {}, "the first tab to hang up")
    assert stats(first)["inVoice"] is False
    # The guest hears the host from the second tab, and never saw the host leave.
    wait_until(
        second,
        lambda: received_from(second, guest["userId"]) > 1000,
        "the second tab to hear the guest",
        lambda: str(stats(second)),
        seconds=20,
    )
    hears_more(guest_page, host["userId"])
    expect(in_call(guest_page, host["username"])).to_be_visible()
    assert guest_page.locator("audio[data-user]").count() == 1

    # Back to the first tab, on purpose.
    first.get_by_role("button", name="Join voice here").click()
    expect(first.get_by_text("You are in the call.")).to_be_visible()
    expect(second.get_by_text("this tab left it")).to_be_visible()
    wait_until(second, lambda: stats(second)["peers"] == {}, "the second tab to hang up")
    hears_more(guest_page, host["userId"])
    # Closing the tab that lost the call leaves the host in it.
    second.close()
    hears_more(guest_page, host["userId"])
    expect(in_call(guest_page, host["username"])).to_be_visible()


def test_a_replay_opened_while_recording_grows_with_the_code(site: Site) -> None:
    """The replay of a running recording takes the code typed since it was opened (kept at
    its end, it shows it), and once the recording stops, its audio."""
    host, guest, session_id, room = dojo(site)
    host_page = in_room(site, host, room)
    viewer = in_room(site, guest, room)  # joins the session
    join_voice(host_page)
    host_page.get_by_role("button", name="Start recording").click()
    wait_recorder_hears(host_page, "the host's")
    [listed] = site.rest(
        "GET", f"/v1/dojos/sessions/{session_id}/recordings", token=guest["token"]
    )["recordings"]
    viewer.goto(f"{site.url}/dojos/{session_id}/recordings/{listed['recordingId']}")
    expect(viewer.get_by_text("This recording is still running")).to_be_visible()
    expect(viewer.locator(".replay .length")).to_contain_text("so far")
    position = viewer.get_by_label("Position")
    first_end = float(position.get_attribute("max") or 0)
    position.fill(f"{first_end:.1f}")  # at the end: the view keeps to it as it grows
    wait_until(viewer, lambda: "return 42" in shown_code(viewer), "the code so far")

    host_page.locator(".cm-content").click()
    host_page.keyboard.press("Control+End")
    host_page.keyboard.type("# typed while watching\n", delay=40)
    wait_until(
        viewer,
        lambda: "# typed while watching" in shown_code(viewer),
        "the replay to take the new code",
        lambda: repr(shown_code(viewer)),
        seconds=20,
    )
    assert float(position.get_attribute("max") or 0) > first_end

    host_page.get_by_role("button", name="Stop recording").click()
    expect(viewer.get_by_label("Recorded voice")).to_be_attached(timeout=90_000)
    expect(viewer.locator(".replay .length")).to_contain_text("long")
    expect(viewer.get_by_text("This recording is still running")).to_have_count(0)
