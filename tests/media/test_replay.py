"""The replay video, checked by decoding what it writes: format, soundtrack, duration, and
pictures that change where and when the code changed, in each author's colour."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageChops

from pocdojo.crdt.authorship import authored
from pocdojo.media.mix import encode
from pocdojo.media.replay import (
    FPS,
    CodeState,
    ReplaySpec,
    estimate_seconds,
    render_replay_video,
    user_color,
    user_color_hex,
)
from pocdojo.media.replay.frame import VISIBLE_LINES, CodeView, clock
from pocdojo.media.replay.highlight import colors, lexer_for
from tests.replay_helpers import Script

ALICE = "6f1c2d3e-0000-4000-8000-000000000001"  # #613583 in the web app
BOB = "ffffffff-ffff-4fff-bfff-ffffffffffff"  # #a3006b
WEB_COLORS = Path(__file__).resolve().parents[2] / "web" / "src" / "room" / "colors.js"


def test_colours_are_the_web_apps() -> None:
    # What web/src/room/colors.js's userColor gives, computed with Node.
    expected = {
        ALICE: "#613583",
        BOB: "#a3006b",
        "a": "#a51d2d",
        "": "#1a5fb4",
        "é😀": "#8f4400",
    }
    assert {key: user_color_hex(key) for key in expected} == expected
    assert user_color(ALICE) == (0x61, 0x35, 0x83)


def test_colours_match_the_web_app_for_many_ids() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js not installed")
    ids = [str(uuid.uuid4()) for _ in range(200)] + ["東京", "x😀y"]
    script = (
        f"import({str(WEB_COLORS.as_uri())!r}).then(m => "
        "process.stdin.on('data', d => { for (const id of JSON.parse(d)) "
        "console.log(m.userColor(id).color) }))"
    )
    done = subprocess.run(
        [node, "-e", script], input=json.dumps(ids), capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == [user_color_hex(i) for i in ids]


def test_syntax_colours_follow_the_language() -> None:
    code = "def f(x):\n\treturn 'x'\r\n"
    python = colors(lexer_for("Python"), code)
    assert len(python) == len(code)
    assert python[0] != python[4]  # the keyword "def" and the name "f"
    plain = colors(lexer_for("NoSuchLanguage"), code)
    assert len(set(plain)) == 1
    assert len(set(colors(lexer_for(None), code))) == 1
    assert len(set(colors(lexer_for("Assembly"), "mov eax, 1\n"))) > 1


def test_clock() -> None:
    assert [clock(s) for s in (0, 9.9, 61, 3600 + 62)] == ["0:00", "0:09", "1:01", "1:01:02"]


def _mean_color(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, ...]:
    pixels = np.asarray(image.crop((box[0], box[1], box[2] + 1, box[3] + 1))).reshape(-1, 3)
    return tuple(int(v) for v in pixels.mean(axis=0))


def _close(a: tuple[int, ...], b: tuple[int, ...], within: int = 12) -> bool:
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) <= within


def _underline(view: CodeView, line: int, column: int, image: Image.Image) -> tuple[int, ...]:
    box = view.cell(line, column)
    assert box is not None
    left, _, right, bottom = box
    return _mean_color(image, (left + 1, bottom - 2, right - 1, bottom - 2))


def test_each_authors_characters_are_drawn_in_their_colour() -> None:
    script = Script()
    script.append(1.0, uuid.UUID(ALICE), "x = 1\n")
    script.append(2.0, uuid.UUID(BOB), "y = 2\n")
    script.insert(3.0, uuid.UUID(BOB), 4, "10")  # "x = 101": Bob's digits in Alice's line
    script.delete(4.0, uuid.UUID(ALICE), 0, 1)  # " = 101"
    *_, last = authored(script.timeline())
    state = CodeState(last.t, last.code, [str(a) for a in last.authors], last.edited)
    assert state.code == " = 101\ny = 2\n"
    view = CodeView(ReplaySpec("t", "Python", 5.0, {ALICE: "alice", BOB: "bob"}))
    image = view.draw(state)
    alice, bob = user_color(ALICE), user_color(BOB)
    for column, who in enumerate([alice, alice, alice, bob, bob, alice]):
        assert _close(_underline(view, 0, column, image), who), column
    for column in range(5):
        assert _close(_underline(view, 1, column, image), bob), column
    # Past the end of a line: no author, no underline.
    assert not _close(_underline(view, 1, 7, image), bob)


def test_the_view_follows_the_last_edit() -> None:
    lines = [f"line_{n} = {n}" for n in range(200)]
    code = "\n".join(lines)
    view = CodeView(ReplaySpec("t", "Python", 1.0, {}))

    def show(line: int) -> None:
        edited = sum(len(text) + 1 for text in lines[:line]) + 3
        view.draw(CodeState(0.0, code, [None] * len(code), edited))
        assert view.top <= line < view.top + VISIBLE_LINES

    for line in (0, 150, 149, 10, 199, 0):
        show(line)
    view.draw(CodeState(0.0, "short", [None] * 5, 5))
    assert view.top == 0  # the code shrank: back to the top


@pytest.fixture(scope="module")
def soundtrack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds of a tone as Ogg/Opus, as the recording job mixes voice."""
    path = tmp_path_factory.mktemp("audio") / "mix.ogg"
    t = np.arange(3 * 48000) / 48000
    encode((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), path, "ogg")
    return path


def _states(script: Script) -> Iterator[CodeState]:
    for state in authored(script.timeline()):
        yield CodeState(
            state.t, state.code, [str(a) if a else None for a in state.authors], state.edited
        )


def _frames(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]  # type: ignore[no-untyped-call]


def test_a_replay_renders_code_and_voice(tmp_path: Path, soundtrack: Path) -> None:
    script = Script()
    script.append(0.5, uuid.UUID(ALICE), "def hello():\n")
    script.append(1.5, uuid.UUID(BOB), "    return 'hi'\n")
    script.append(2.5, uuid.UUID(ALICE), "# done\n")
    spec = ReplaySpec("Kata — 東京", "Python", 3.0, {ALICE: "alice", BOB: "bob"})
    percents: list[int] = []
    video, thumbnail = tmp_path / "replay.mp4", tmp_path / "thumb.jpg"
    result = render_replay_video(
        spec, _states(script), video, thumbnail, audio=soundtrack, progress=percents.append
    )
    assert result.frames == 30
    assert result.drawn < result.frames  # frames without a change are repeats
    assert percents[0] == 0
    assert percents[-1] == 100
    assert percents == sorted(set(percents))

    with av.open(str(video)) as container:
        [picture] = container.streams.video
        [sound] = container.streams.audio
        assert picture.codec_context.name == "h264"
        assert (picture.width, picture.height) == (1280, 720)
        assert picture.average_rate == FPS
        assert sound.codec_context.name == "aac"
        assert container.duration is not None
        assert abs(container.duration / av.time_base - spec.duration) <= 0.1 * spec.duration
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(sound)])
        assert abs(len(audio) / 48000 - 3.0) <= 0.3
        assert np.abs(audio).max() > 0.1  # the tone, not silence
    frames = _frames(video)
    assert len(frames) == 30

    def code_area(index: int) -> Image.Image:
        return frames[index].crop((0, 110, 1280, 720))

    def differ(a: int, b: int) -> bool:
        diff = ImageChops.difference(code_area(a), code_area(b)).convert("L")
        return sum(diff.point(lambda v: 255 if v > 40 else 0).histogram()[255:]) > 200

    assert not differ(0, 4)  # nothing typed before 0.5 s
    assert differ(4, 6)  # Alice's line
    assert not differ(6, 14)
    assert differ(14, 16)  # Bob's
    assert differ(24, 26)  # Alice's comment
    assert not differ(26, 29)

    image = Image.open(io.BytesIO(thumbnail.read_bytes()))
    assert image.format == "JPEG"
    assert image.size == (640, 360)


def test_a_replay_without_voice_and_with_late_edits(tmp_path: Path) -> None:
    script = Script()
    script.append(0.0, uuid.UUID(ALICE), "a = 1\n")
    script.append(9.0, uuid.UUID(ALICE), "b = 2\n")  # after the end: the last frame shows it
    spec = ReplaySpec("Silent", None, 1.0, {ALICE: "alice"})
    video, thumbnail = tmp_path / "v.mp4", tmp_path / "t.jpg"
    render_replay_video(spec, _states(script), video, thumbnail)
    with av.open(str(video)) as container:
        assert len(container.streams.video) == 1
        assert len(container.streams.audio) == 0
    frames = _frames(video)
    assert len(frames) == FPS
    assert ImageChops.difference(frames[-2], frames[-1]).getbbox() is not None


def test_a_failed_render_leaves_no_files(tmp_path: Path) -> None:
    def stop(percent: int) -> None:
        if percent > 10:
            raise RuntimeError("cancelled")

    video, thumbnail = tmp_path / "v.mp4", tmp_path / "t.jpg"
    with pytest.raises(RuntimeError):
        render_replay_video(ReplaySpec("x", None, 2.0, {}), [], video, thumbnail, progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_estimate_grows_with_the_recording() -> None:
    assert 0 < estimate_seconds(0) < estimate_seconds(60) < estimate_seconds(600)


def test_a_long_line_scrolls_the_view_sideways_to_the_edit() -> None:
    """An edit past the right edge is in sight, drawn in its author's colour; the view scrolls
    back once the edit is on a line that fits."""
    view = CodeView(ReplaySpec("t", "Python", 1.0, {ALICE: "alice"}))
    short = "x = 1\n"
    long_line = "values = [" + ", ".join(str(n) for n in range(200)) + "]"
    code = short + long_line + "\n"
    end = len(short) + len(long_line) - 1  # the closing bracket, far past the edge
    authors = [ALICE if i == end else None for i in range(len(code))]
    image = view.draw(CodeState(0.0, code, authors, end))
    column = end - len(short)
    assert view.left > 0
    box = view.cell(1, column)
    assert box is not None, (view.left, column)
    assert _close(_underline(view, 1, column, image), user_color(ALICE))
    assert view.cell(1, 0) is None  # the line's start scrolled out of sight
    # A tab counts as the columns it takes.
    tabbed = "\t" * 40 + "y"
    view.draw(CodeState(0.0, tabbed, [None] * len(tabbed), len(tabbed) - 1))
    assert view.cell(0, 40 * 4) is not None
    view.draw(CodeState(0.0, code, [None] * len(code), 2))  # back on the short line
    assert view.left == 0
