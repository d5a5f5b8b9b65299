"""Transitions between stills, computed on encoder-ready YUV planes.

Templates say which transition they want; this module makes the in-between frames. Working
on the converted planes means one colour conversion per still instead of one per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from av.video.frame import VideoFrame
from PIL import Image, ImageDraw

from pocdojo.media.video.encode import Picture, Planes, frame_from_planes, yuv
from pocdojo.media.video.model import WIDTH
from pocdojo.media.video.text import Color

_EDGE_WIDTH: Final = 6


@dataclass(frozen=True)
class Transition:
    """How one segment gives way to the next.

    Attributes:
        kind: ``"dissolve"`` blends the two stills; ``"wipe"`` uncovers the next one from
            the left. A wipe leaves every pixel either unchanged or final, so the encoder
            only codes the newly uncovered strip.
        edge: For a wipe, the colour of the bar leading it, or None for a bare edge.
    """

    kind: Literal["dissolve", "wipe"]
    edge: Color | None = None


DISSOLVE: Final = Transition("dissolve")


def smoothstep(t: float) -> float:
    """Ease in and out: slow at both ends of a transition."""
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


def _dissolve(before: Planes, after: Planes, t: float) -> Planes:
    y, u, v = (Image.blend(a, b, t) for a, b in zip(before, after, strict=True))
    return y, u, v


def _wipe(before: Planes, after: Planes, t: float, edge: Color | None) -> Planes:
    cut = 2 * round(WIDTH * t / 2)  # even, so chroma (half width) cuts at the same place
    values = yuv(edge) if edge else None
    planes = []
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        scale = old.width / WIDTH
        x = round(cut * scale)
        plane = old.copy()
        plane.paste(new.crop((0, 0, x, plane.height)), (0, 0))
        if values and x > 0:
            bar = max(round(_EDGE_WIDTH * scale), 1)
            ImageDraw.Draw(plane).rectangle(
                (max(x - bar, 0), 0, x - 1, plane.height), fill=values[index]
            )
        planes.append(plane)
    return planes[0], planes[1], planes[2]


def between(before: Picture, after: Picture, t: float, transition: Transition) -> VideoFrame:
    """The frame ``t`` (0..1) of the way from ``before`` to ``after``, eased."""
    eased = smoothstep(t)
    if transition.kind == "wipe":
        planes = _wipe(before.planes, after.planes, eased, transition.edge)
    else:
        planes = _dissolve(before.planes, after.planes, eased)
    return frame_from_planes(planes)
