"""The yearly video, checked by decoding what it writes.

Cards are counted from the decoded pictures, not taken from the renderer's word: a "still"
is a run of frames that stay the same, and every segment (intro, each card, outro) must show
up as one still lasting at least a second, over the middle of its time slot.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from pocdojo.media.video import (
    CARD_SECONDS,
    FPS,
    INTRO_SECONDS,
    OUTRO_SECONDS,
    TEMPLATES,
    VideoPoc,
    VideoResult,
    VideoSpec,
    estimate_seconds,
    render_yearly_video,
)
from pocdojo.media.video.text import ELLIPSIS, face, wrap

# A pixel "changed" when its luma moved more than this: far above what re-encoding the
# same picture at a keyframe does, far below text appearing or disappearing.
_LUMA_STEP = 32
_LUMA_LUT = [0 if value <= _LUMA_STEP else 255 for value in range(256)]
# Two frames are the same picture when fewer than this share of their pixels changed.
_SAME = 0.0005

_TITLES = (
    "Kafka consumer lag exporter",
    "Rate limiter on Valkey with sliding windows",
    "gRPC gateway for the billing service",
    "Vector search over support tickets",
    "Blue-green deploys on Nomad",
    "CRDT sync for offline notes",
)
_LANGUAGES = ("Python", "Go", "Rust", "TypeScript", "Java", "Elixir")


def _poc(number: int) -> VideoPoc:
    return VideoPoc(
        title=f"{_TITLES[number % len(_TITLES)]} ({number + 1})",
        language=_LANGUAGES[number % len(_LANGUAGES)],
        tags=tuple(f"topic-{number}-{tag}" for tag in range(1 + number % 4)),
        created_at=datetime(2025, 1 + number % 12, 1 + number % 28, tzinfo=UTC),
        description=f"Proof number {number + 1}: " + "measures what happens under load. " * 3,
        views=137 * (number + 1),
        favorites=11 * number,
    )


def _spec(count: int, template: str = "default", metrics: bool = True) -> VideoSpec:
    return VideoSpec(
        year=2025,
        owner_name="Sam Example",
        company="Compilers & Co",
        pocs=tuple(_poc(number) for number in range(count)),
        include_metrics=metrics,
        template=template,
    )


@dataclass(frozen=True)
class Decoded:
    """What a decoder sees in a video file."""

    codec: str
    width: int
    height: int
    rate: Fraction
    duration: float
    lumas: list[Image.Image]  # every frame's luma plane at half size


def _decode(path: Path) -> Decoded:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.duration is not None
        assert stream.time_base is not None
        lumas = []
        for frame in container.decode(stream):
            plane = frame.planes[0]
            luma = Image.frombuffer(
                "L", (frame.width, frame.height), bytes(plane), "raw", "L", plane.line_size, 1
            )
            lumas.append(luma.reduce(2))
        return Decoded(
            codec=stream.codec_context.name,
            width=stream.width,
            height=stream.height,
            rate=Fraction(stream.average_rate or 0),
            duration=float(stream.duration * stream.time_base),
            lumas=lumas,
        )


def _changed(a: Image.Image, b: Image.Image) -> float:
    """The share of pixels whose luma differs by more than ``_LUMA_STEP``."""
    mask = ImageChops.difference(a, b).point(_LUMA_LUT)
    return float(ImageStat.Stat(mask).mean[0]) / 255


def _stills(lumas: list[Image.Image]) -> list[range]:
    """Runs of at least a second of frames that all match the run's first frame."""
    runs: list[range] = []
    start = 0
    for index in range(1, len(lumas) + 1):
        if index == len(lumas) or _changed(lumas[start], lumas[index]) >= _SAME:
            if index - start >= FPS:
                runs.append(range(start, index))
            start = index
    return runs


def _slots(cards: int) -> list[range]:
    """Each segment's frames, from the published durations."""
    lengths = [INTRO_SECONDS] + [CARD_SECONDS] * cards + [OUTRO_SECONDS]
    slots, start = [], 0
    for seconds in lengths:
        frames = round(seconds * FPS)
        slots.append(range(start, start + frames))
        start += frames
    return slots


def _middle(video: Decoded, slot: range) -> Image.Image:
    return video.lumas[slot.start + len(slot) // 2]


@dataclass(frozen=True)
class Rendered:
    result: VideoResult
    video: Decoded
    thumbnail: Path
    progress: list[int]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Callable[[VideoSpec], Rendered]:
    """Render a spec once per module and decode it (specs are compared by value)."""
    cache: dict[VideoSpec, Rendered] = {}

    def render(spec: VideoSpec) -> Rendered:
        if spec not in cache:
            directory = tmp_path_factory.mktemp("video")
            progress: list[int] = []
            result = render_yearly_video(
                spec, directory / "year.mp4", directory / "year.jpg", progress.append
            )
            cache[spec] = Rendered(
                result, _decode(directory / "year.mp4"), directory / "year.jpg", progress
            )
        return cache[spec]

    return render


@pytest.mark.parametrize(("count", "template"), [(1, "default"), (3, "minimal"), (12, "default")])
def test_video_format_length_and_one_still_per_card(
    rendered: Callable[[VideoSpec], Rendered], count: int, template: str
) -> None:
    done = rendered(_spec(count, template))
    video = done.video
    seconds = INTRO_SECONDS + count * CARD_SECONDS + OUTRO_SECONDS

    assert (video.codec, video.width, video.height) == ("h264", 1280, 720)
    assert video.rate == 30
    assert abs(video.duration - seconds) <= 1 / FPS
    assert len(video.lumas) == round(seconds * FPS) == done.result.frames
    assert done.result.cards == count
    assert (done.result.width, done.result.height) == (1280, 720)
    assert abs(done.result.duration_seconds - seconds) <= 1 / FPS

    stills = _stills(video.lumas)
    slots = _slots(count)
    assert len(stills) == count + 2
    for still, slot in zip(stills, slots, strict=True):
        middle = slot.start + len(slot) // 2
        assert still.start in slot
        assert middle in still


def test_templates_look_different(rendered: Callable[[VideoSpec], Rendered]) -> None:
    dark = rendered(_spec(1, "default")).video
    light = rendered(_spec(1, "minimal")).video
    for slot in _slots(1):
        assert _changed(_middle(dark, slot), _middle(light, slot)) > 0.5
    dark_mean = ImageStat.Stat(_middle(dark, _slots(1)[1])).mean[0]
    light_mean = ImageStat.Stat(_middle(light, _slots(1)[1])).mean[0]
    assert dark_mean < 80 < 160 < light_mean


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_metrics_change_the_card_but_not_the_intro(
    rendered: Callable[[VideoSpec], Rendered], template: str
) -> None:
    shown = rendered(_spec(1, template, metrics=True)).video
    hidden = rendered(_spec(1, template, metrics=False)).video
    intro, card, outro = _slots(1)
    assert _changed(_middle(shown, intro), _middle(hidden, intro)) < _SAME
    assert _changed(_middle(shown, card), _middle(hidden, card)) > _SAME
    assert _changed(_middle(shown, outro), _middle(hidden, outro)) > _SAME


def test_thumbnail_is_a_jpeg_of_the_intro(rendered: Callable[[VideoSpec], Rendered]) -> None:
    done = rendered(_spec(3, "minimal"))
    with Image.open(done.thumbnail) as thumbnail:
        assert thumbnail.format == "JPEG"
        assert thumbnail.size == (640, 360)
        luma = thumbnail.convert("L")
    intro, card, *_ = _slots(3)
    assert _changed(luma, _middle(done.video, intro)) < 0.01
    assert _changed(luma, _middle(done.video, card)) > 0.01


def test_progress_rises_from_0_to_100_in_few_calls(
    rendered: Callable[[VideoSpec], Rendered],
) -> None:
    done = rendered(_spec(12, "default"))
    progress = done.progress
    assert progress[0] == 0
    assert progress[-1] == 100
    assert all(a < b for a, b in itertools.pairwise(progress))
    assert 5 <= len(progress) <= 101
    assert len(progress) < done.result.frames // 10


_AWKWARD = VideoPoc(
    title="漢字のタイトル 🚀 with ZWJ 👩‍💻 and عربى text " + "very long words " * 120,
    language="",
    tags=tuple(f"标签-{number}-" + "x" * number * 5 for number in range(20)),
    created_at=datetime(2025, 12, 31, 23, 59),
    description="",
    views=10**12,
    favorites=0,
)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_unicode_long_and_empty_text_renders(
    rendered: Callable[[VideoSpec], Rendered], template: str
) -> None:
    spec = VideoSpec(
        year=2025,
        owner_name="Żaneta 🦄 Ørn-山田 " * 10,
        company="\u202eevil bidi\u202c\x00\x07 Ltd\n\tnewline",
        pocs=(_AWKWARD, dataclasses.replace(_poc(1), description="\n\n", tags=(), title="")),
        include_metrics=True,
        template=template,
    )
    done = rendered(spec)
    assert len(done.video.lumas) == done.result.frames
    assert len(_stills(done.video.lumas)) == 4


def test_long_text_wraps_within_width_and_ends_with_ellipsis() -> None:
    body = face("sans", 28)
    lines = wrap("word " * 200, body, 500, 3)
    assert len(lines) == 3
    assert all(body.length(line) <= 500 for line in lines)
    assert lines[-1].endswith(ELLIPSIS)

    cjk = wrap("漢字仮名交じり文" * 30, body, 400, 4)
    assert len(cjk) == 4
    assert all(body.length(line) <= 400 for line in cjk)

    short = wrap("  fits\non   one line ", body, 500, 2)
    assert short == ["fits on one line"]
    assert wrap("", body, 500, 2) == []
    assert body.length("line\nand\u2029paragraph breaks") > 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dataclasses.replace(_spec(2), template="sparkly"), "unknown video template"),
        (dataclasses.replace(_spec(2), pocs=()), "at least one POC"),
    ],
)
def test_invalid_specs_raise_before_writing(spec: VideoSpec, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        render_yearly_video(spec, tmp_path / "year.mp4", tmp_path / "year.jpg")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_render_leaves_old_files_and_no_debris(tmp_path: Path) -> None:
    video, thumbnail = tmp_path / "year.mp4", tmp_path / "year.jpg"
    video.write_bytes(b"old video")
    thumbnail.write_bytes(b"old thumbnail")

    def interrupt(percent: int) -> None:
        if percent >= 30:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        render_yearly_video(_spec(2), video, thumbnail, interrupt)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["year.jpg", "year.mp4"]
    assert video.read_bytes() == b"old video"
    assert thumbnail.read_bytes() == b"old thumbnail"


def test_estimate_grows_with_the_number_of_pocs() -> None:
    estimates = [estimate_seconds(count) for count in (1, 12, 50, 200)]
    assert estimates[0] >= 1
    assert all(a < b for a, b in itertools.pairwise(estimates))


def test_templates_registry_names_both_looks() -> None:
    assert {"default", "minimal"} <= set(TEMPLATES)
    assert all(name == template.name for name, template in TEMPLATES.items())
