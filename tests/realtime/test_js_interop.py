"""The document socket with the real JavaScript Yjs clients (yjs + y-websocket's provider).

Each JavaScript client is a Node process (tests/js/yclient.js) driven over stdin/stdout with
one JSON object a line (``JsClient`` in tests/realtime/jsclient.py, started by the ``node``
fixture); the Python client is tests/yclient.py. Positions: Yjs in JavaScript counts UTF-16
code units, pycrdt counts UTF-8 bytes, so the tests convert from code points (``_utf16`` /
``_utf8``) or let the scripts place text at line starts themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from pocdojo.core import appkeys
from pocdojo.core.security import ParticipantTokens
from pocdojo.core.settings import Settings
from pocdojo.crdt import document
from pocdojo.realtime.peer import CloseCode
from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import Dojo, create_dojo, join
from tests.helpers import Account, register, signup
from tests.realtime.jsclient import DEADLINE, JsClient, JsFactory, eventually, report_of
from tests.yclient import YClient

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

pytestmark = pytest.mark.timeout(120)  # the first test may also run `npm ci`


def _utf16(text: str, index: int) -> int:
    """Code point ``index`` of ``text`` as a Yjs (JavaScript) index: UTF-16 code units."""
    return len(text[:index].encode("utf-16-le")) // 2


def _utf8(text: str, index: int) -> int:
    """Code point ``index`` of ``text`` as a pycrdt index: UTF-8 bytes."""
    return len(text[:index].encode())


def _line_start(text: str, line: int) -> int:
    """Code point index where line ``line`` starts (past the last line: the end)."""
    index = 0
    for _ in range(line):
        found = text.find("\n", index)
        if found < 0:
            return len(text)
        index = found + 1
    return index


def py_insert_line(yc: YClient, line: int, text: str) -> None:
    code = yc.code
    yc.text.insert(_utf8(code, _line_start(code, line)), text)


def py_delete_text(yc: YClient, text: str) -> None:
    code = yc.code
    start = code.index(text)
    del yc.text[_utf8(code, start) : _utf8(code, start + len(text))]


def _lines(text: str) -> Counter[str]:
    return Counter(text.splitlines(keepends=True))


def _rooms(client: Client) -> Any:
    assert client.app is not None
    return client.app[rooms_key]


async def _unloaded(client: Client) -> None:
    """Wait until no room is loaded and the last unload has finished (it sets the gauge)."""
    rooms = _rooms(client)
    await eventually(
        lambda: not rooms.rooms and rooms.metrics.rooms._value.get() == 0, "room unload"
    )


# --- 1. concurrent edits converge ----------------------------------------------------------


@pytest.mark.parametrize(
    "deletes",
    [pytest.param(False, id="inserts"), pytest.param(True, id="deletes")],
)
async def test_two_js_clients_and_a_python_client_converge(
    client: Client, admin: Account, node: JsFactory, deletes: bool
) -> None:
    initial = "# kata é→🙂\nshared line 🙂\nlast\n"
    dojo = await create_dojo(client, admin, initialCode=initial)
    guest, other = await register(client, admin), await register(client, admin)
    guest_token, other_token = await join(client, dojo, guest), await join(client, dojo, other)
    async with aiohttp.ClientSession() as http:
        py = await YClient.connect(http, dojo.doc(other_token))
        js1 = await node("js1", dojo, dojo.host_token)
        js2 = await node("js2", dojo, guest_token)
        report = report_of(js1, js2, py)
        await eventually(
            lambda: js1.synced and js2.synced and js1.text == js2.text == py.code == initial,
            "initial sync",
            report=report,
        )

        expected = _lines(initial)
        deleted: Counter[str] = Counter()
        for r in range(6):
            # The three edits of a round race each other through the server: nobody waits
            # for another's edit to arrive before making its own.
            own = {
                "js1": f"js1 #{r} é→🙂\n",
                "js2": f"js2 #{r} 🙂 ß 日本\n",
                "py": f"py #{r} ü→🙃 👩‍💻\n",
            }
            expected.update(own.values())
            edits = [
                js1.request("insertLine", line=(2 * r) % 5, text=own["js1"]),
                js2.request("insertLine", line=r % 3 + 1, text=own["js2"]),
            ]
            py_insert_line(py, (r + 2) % 4, own["py"])
            # Each deletes one of its own earlier lines, wherever it is now.
            if deletes and r in (3, 5):
                gone = {name: line.replace(f"#{r}", f"#{r - 2}") for name, line in own.items()}
                edits.append(js1.request("deleteText", text=gone["js1"]))
                edits.append(js2.request("deleteText", text=gone["js2"]))
                py_delete_text(py, gone["py"])
                deleted.update(gone.values())
            if deletes and r == 4:  # two clients delete the same line at about the same time
                shared = "shared line 🙂\n"
                edits.append(js2.request("deleteText", text=shared, missingOk=True))
                if shared in py.code:
                    py_delete_text(py, shared)
                deleted[shared] += 1
            await asyncio.gather(*edits)
        expected -= deleted

        await eventually(
            lambda: js1.text == js2.text == py.code and _lines(py.code) == expected,
            "convergence",
            report=report,
        )
        final = py.code
        assert await js1.get() == final
        assert await js2.get() == final
        room = _rooms(client).rooms[UUID(dojo.session_id)]
        assert room.code() == final

        # Persisted: the update log in PostgreSQL (flushed within 0.2 s) rebuilds the same text.
        assert client.app is not None
        pool = client.app[appkeys.db_pool_key]
        stored: list[str] = []

        async def persisted() -> str:
            doc = await document.load(pool, UUID(admin.tenant_id), UUID(dojo.session_id))
            return doc.code()

        deadline = time.monotonic() + DEADLINE
        while (code := await persisted()) != final and time.monotonic() < deadline:
            stored.append(code)
            await asyncio.sleep(0.05)
        assert code == final, stored[-1:]

        # Ending the session closes the JavaScript clients for good (4410) and keeps the code.
        resp = await client.post(
            f"/v1/dojos/sessions/{dojo.session_id}/end", headers=admin.auth, json={}
        )
        assert resp.status == 200, await resp.text()
        await js1.wait_for(lambda: js1.terminal is not None, "terminal close")
        await js2.wait_for(lambda: js2.terminal is not None, "terminal close")
        assert js1.terminal is not None
        assert js2.terminal is not None
        assert js1.terminal["code"] == js2.terminal["code"] == CloseCode.ENDED
        assert await py.wait_closed() == CloseCode.ENDED
    resp = await client.get(f"/v1/dojos/sessions/{dojo.session_id}/snapshots", headers=admin.auth)
    snapshots = (await resp.json())["snapshots"]
    assert snapshots[-1]["reason"] == "end"
    assert snapshots[-1]["code"] == final
    assert UUID(dojo.session_id) not in _rooms(client).rooms


# --- 2. awareness --------------------------------------------------------------------------

A_STATE = {"user": {"name": "Ada é→🙂", "color": "#ff0000"}, "cursor": {"line": 1}}
B_STATE = {"user": {"name": "Bob", "color": "#00ff00"}, "cursor": None}
PY_STATE = {"user": {"name": "Py ü", "color": "#0000ff"}}


async def _leave(js: JsClient, how: str) -> None:
    if how == "disconnect":
        await js.request("disconnect")  # provider.disconnect(): announces its state is gone
    else:
        js.kill()  # dies without a word: only the server can tell the others


async def _doc_peers(client: Client, dojo: Dojo, count: int) -> None:
    """Wait until the server has detached every socket but ``count`` (its removal of their
    awareness states is then queued to everyone)."""
    room = _rooms(client).rooms[UUID(dojo.session_id)]
    await eventually(lambda: len(room.doc_peers) == count, f"{count} sockets left")


@pytest.mark.parametrize("leave", ["disconnect", "kill"])
async def test_awareness_between_js_and_python_clients(
    client: Client, admin: Account, node: JsFactory, leave: str
) -> None:
    dojo = await create_dojo(client, admin, initialCode="x\n")
    tokens = [await join(client, dojo, await register(client, admin)) for _ in range(3)]
    async with aiohttp.ClientSession() as http:
        a = await node("a", dojo, dojo.host_token)
        b = await node("b", dojo, tokens[0])
        py = await YClient.connect(http, dojo.doc(tokens[1]))
        py_id = py.awareness.client_id
        report = report_of(a, b, py)
        await eventually(lambda: a.synced and b.synced and py.synced.is_set(), "sync")
        await a.request("awareness", state=A_STATE)
        await eventually(
            lambda: (
                b.others().get(a.client_id) == A_STATE
                and py.remote_awareness.get(a.client_id) == A_STATE
            ),
            "a's awareness reaching b and python",
            report=report,
        )
        await b.request("awareness", state=B_STATE)
        py.set_awareness(PY_STATE)
        await eventually(
            lambda: (
                a.others() == {b.client_id: B_STATE, py_id: PY_STATE}
                and b.others() == {a.client_id: A_STATE, py_id: PY_STATE}
                and py.remote_awareness.get(b.client_id) == B_STATE
            ),
            "everyone's awareness reaching everyone",
            report=report,
        )

        # A late joiner learns who is here on connecting, not at their next renewal (the
        # JavaScript clients renew 15 s after setting their state; Python never does).
        late = await node("late", dojo, tokens[2])
        present = {a.client_id: A_STATE, b.client_id: B_STATE, py_id: PY_STATE}
        await late.wait_for(
            lambda: late.others() == present,
            "the late joiner receiving the awareness of those present",
            within=8,
        )
        late_py = await YClient.connect(http, dojo.doc(dojo.host_token))
        await late_py.wait_for(
            lambda: all(late_py.remote_awareness.get(k) == v for k, v in present.items()), 8
        )

        # The first to leave, by provider.disconnect() or by dying, is gone for everyone.
        await _leave(a, leave)
        await eventually(
            lambda: (
                a.client_id not in b.states
                and a.client_id not in late.states
                and a.client_id not in py.remote_awareness
                and a.client_id not in late_py.remote_awareness
            ),
            f"a's awareness removed after {leave}",
            report=report_of(a, b, late, py),
        )
        await py.close()
        await late_py.close()


@pytest.mark.parametrize("leave", ["disconnect", "kill"])
async def test_a_leaving_js_client_takes_only_its_own_awareness(
    client: Client, admin: Account, node: JsFactory, leave: str
) -> None:
    dojo = await create_dojo(client, admin, initialCode="x\n")
    tokens = [await join(client, dojo, await register(client, admin)) for _ in range(2)]
    async with aiohttp.ClientSession() as http:
        a = await node("a", dojo, dojo.host_token)
        b = await node("b", dojo, tokens[0])
        py = await YClient.connect(http, dojo.doc(tokens[1]))
        py_id = py.awareness.client_id
        report = report_of(a, b, py)
        await eventually(lambda: a.synced and b.synced and py.synced.is_set(), "sync")
        await a.request("awareness", state=A_STATE)
        await b.request("awareness", state=B_STATE)
        py.set_awareness(PY_STATE)
        await eventually(
            lambda: (
                a.others() == {b.client_id: B_STATE, py_id: PY_STATE}
                and b.others() == {a.client_id: A_STATE, py_id: PY_STATE}
                and py.remote_awareness.get(a.client_id) == A_STATE
                and py.remote_awareness.get(b.client_id) == B_STATE
            ),
            "everyone's awareness reaching everyone",
            report=report,
        )
        await _leave(a, leave)
        await _doc_peers(client, dojo, 2)
        # Barrier: an edit from each side, sent after the server detached a, arrives after
        # whatever the server sent about a's leaving.
        py.text += "py\n"
        await b.request("insertLine", line=99, text="b\n")
        await eventually(
            lambda: py.code == b.text == "x\npy\nb\n" or py.code == b.text == "x\nb\npy\n",
            "the barrier edits",
            report=report,
        )
        assert a.client_id not in b.states
        assert a.client_id not in py.remote_awareness
        assert b.others() == {py_id: PY_STATE}, "b lost python's awareness"
        assert py.remote_awareness.get(b.client_id) == B_STATE, "python lost b's awareness"
        await py.close()


# --- 3. observers --------------------------------------------------------------------------


async def test_a_js_observers_edits_reach_no_one(
    client: Client, admin: Account, node: JsFactory
) -> None:
    dojo = await create_dojo(client, admin, initialCode="x = 1\n")
    observer_token = await join(client, dojo, await register(client, admin), role="observer")
    guest_token = await join(client, dojo, await register(client, admin))
    async with aiohttp.ClientSession() as http:
        host = await node("host", dojo, dojo.host_token)
        observer = await node("observer", dojo, observer_token)
        py = await YClient.connect(http, dojo.doc(guest_token))
        report = report_of(host, observer, py)
        await eventually(
            lambda: host.synced and observer.synced and observer.text == py.code == "x = 1\n",
            "sync",
            report=report,
        )
        await observer.request("insert", index=0, text="# sneaky é→🙂\n")
        await observer.request("insertLine", line=1, text="sneaky = True\n")
        # The observer's awareness is relayed; it left the observer after its edits, on the
        # same socket, so once others see it they would have seen the edits too.
        await observer.request("awareness", state={"marker": "after the edits"})
        await eventually(
            lambda: (
                host.others().get(observer.client_id) == {"marker": "after the edits"}
                and py.remote_awareness.get(observer.client_id) == {"marker": "after the edits"}
            ),
            "the observer's awareness reaching the others",
            report=report,
        )
        assert "sneaky" not in host.text
        assert "sneaky" not in py.code
        assert "sneaky" not in _rooms(client).rooms[UUID(dojo.session_id)].code()

        # The observer still receives everyone's edits.
        await host.request("insertLine", line=99, text="y = 2 # é\n")
        py.text += "z = 3 # 🙂\n"
        await eventually(
            lambda: "y = 2 # é\n" in observer.text and "z = 3 # 🙂\n" in observer.text,
            "others' edits reaching the observer",
            report=report,
        )
        assert "# sneaky é→🙂\n" in observer.text
        assert "sneaky = True\n" in observer.text

        # After the observer reconnects (resending its state in sync step 2), and for a late
        # joiner syncing from the server, the edits are still nowhere else.
        await observer.request("disconnect")
        await observer.request("connect")
        await observer.wait_for(lambda: observer.synced, "resync")
        await observer.request("awareness", state={"marker": "after the resync"})
        late = await node("late", dojo, dojo.host_token)
        await eventually(
            lambda: (
                host.others().get(observer.client_id) == {"marker": "after the resync"}
                and late.synced
                and late.text == host.text == py.code
            ),
            "late joiner sync",
            report=report_of(host, observer, late, py),
        )
        for text in (late.text, host.text, py.code):
            assert text.count("\n") == 3
            assert "sneaky" not in text
        assert "sneaky" not in _rooms(client).rooms[UUID(dojo.session_id)].code()
        await py.close()


# --- 4. offline edits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "online_delete",
    [
        pytest.param(False, id="online-inserts"),
        pytest.param(True, id="online-delete"),
    ],
)
async def test_offline_js_edits_merge_on_reconnect(
    make_client: MakeClient, node: JsFactory, online_delete: bool
) -> None:
    client = await make_client(dojo_idle_unload=0.0)
    admin = await signup(client)
    initial = "alpha é\nbeta 🙂\ngamma\ndelta\n"
    dojo = await create_dojo(client, admin, initialCode=initial)
    guest_token = await join(client, dojo, await register(client, admin))
    py_token = await join(client, dojo, await register(client, admin))
    async with aiohttp.ClientSession() as http:
        away = await node("away", dojo, dojo.host_token)
        stay = await node("stay", dojo, guest_token)
        py = await YClient.connect(http, dojo.doc(py_token))
        report = report_of(away, stay, py)
        await eventually(
            lambda: away.synced and stay.synced and away.text == stay.text == py.code == initial,
            "sync",
            report=report,
        )

        await away.request("disconnect")
        await away.wait_for(lambda: away.status == "disconnected", "disconnected")
        # Offline, its local text is exactly what it has done, so positions can be computed.
        local = await away.get()
        at = local.index("🙂")
        await away.request("insert", index=_utf16(local, at), text="→offline✓")  # before 🙂
        local = await away.get()
        assert local.startswith("alpha é\nbeta →offline✓🙂\n")
        at = local.index("gamma")
        await away.request("delete", index=_utf16(local, at), length=len("gamma\n"))
        await away.request("insertLine", line=99, text="offline tail 🙃\n")
        await away.request("insert", index=0, text="offline head ß\n")

        # Meanwhile the others edit the same lines (with online_delete, deleting the line the
        # offline client is typing into).
        if online_delete:
            await stay.request("deleteText", text="beta 🙂\n")
        await stay.request("insertLine", line=1, text="online js ü\n")
        py.text.insert(0, "online py 👩‍💻\n")
        py.text += "online py tail\n"
        online = ["online js ü\n", "online py 👩‍💻\n", "online py tail\n"]
        await eventually(
            lambda: stay.text == py.code and all(line in py.code for line in online),
            "the online clients converging",
            report=report,
        )
        away_text = await away.get()
        assert not any(line in away_text for line in online), "the offline client got edits"
        assert "offline" not in stay.text
        assert "offline" not in py.code

        await away.request("connect")
        await eventually(
            lambda: away.synced and away.text == stay.text == py.code,
            "convergence after the reconnect",
            report=report,
        )
        final = py.code
        # Both sides' edits survive, each exactly once, and nothing else is there (where Yjs
        # puts concurrent inserts relative to each other is its business, not the server's).
        kept = [
            "online py 👩‍💻\n",
            "offline head ß\n",
            "alpha é\n",
            "online js ü\n",
            # typed into a line that, with online_delete, the others deleted meanwhile
            "→offline✓" if online_delete else "beta →offline✓🙂\n",
            "delta\n",
            "offline tail 🙃\n",
            "online py tail\n",
        ]
        assert all(final.count(fragment) == 1 for fragment in kept), final
        assert len(final) == sum(map(len, kept)), final
        assert "gamma" not in final
        assert _rooms(client).rooms[UUID(dojo.session_id)].code() == final

        # Everyone leaves; the room unloads (idle unload 0 s); a newcomer loads it back.
        await away.request("disconnect")
        await stay.request("disconnect")
        await py.close()
        await _unloaded(client)
        newcomer = await node("newcomer", dojo, guest_token)
        await newcomer.wait_for(lambda: newcomer.synced and newcomer.text == final, "reload")
        await newcomer.request("disconnect")
        await _unloaded(client)  # not while the test server shuts down


# --- 5. refused connections ----------------------------------------------------------------


REFUSALS = {
    "missing": CloseCode.UNAUTHORIZED,
    "garbage": CloseCode.UNAUTHORIZED,
    "forged": CloseCode.UNAUTHORIZED,
    "expired": CloseCode.UNAUTHORIZED,
    "access-token": CloseCode.UNAUTHORIZED,
    "other-session": CloseCode.FORBIDDEN,
    "ended": CloseCode.ENDED,
}


@pytest.mark.parametrize("problem", list(REFUSALS))
async def test_a_js_client_sees_why_it_was_refused(
    client: Client, admin: Account, settings: Settings, node: JsFactory, problem: str
) -> None:
    dojo = await create_dojo(client, admin)
    head, _, signature = dojo.host_token.rpartition(".")
    if problem == "missing":
        token = ""
    elif problem == "garbage":
        token = "not-a-token"
    elif problem == "forged":
        token = f"{head}.{'A' * len(signature)}"
    elif problem == "expired":
        # Signed with the server's secret, for this session and its host, but expired.
        stale = ParticipantTokens(settings.model_copy(update={"participant_token_ttl": -120}))
        token = stale.issue(
            user_id=UUID(admin.user_id),
            tenant_id=UUID(admin.tenant_id),
            session_id=UUID(dojo.session_id),
            role="host",
            login_session_id=UUID(admin.session_id),
        )
    elif problem == "access-token":
        token = admin.token  # the REST access token is not a participant token
    elif problem == "other-session":
        token = (await create_dojo(client, admin)).host_token
    else:
        token = dojo.host_token
        resp = await client.post(
            f"/v1/dojos/sessions/{dojo.session_id}/end", headers=admin.auth, json={}
        )
        assert resp.status == 200, await resp.text()
    js = await node("refused", dojo, token)
    # 44xx close codes are final for y-websocket: it reports them and stops reconnecting.
    await js.wait_for(lambda: js.terminal is not None, "terminal close")
    assert js.terminal is not None
    assert js.terminal["code"] == REFUSALS[problem]
    assert [c["code"] for c in js.closes] == [REFUSALS[problem]]
    assert not js.synced
    assert js.text == ""
