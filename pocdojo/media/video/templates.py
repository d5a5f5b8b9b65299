"""Video templates: what one must draw, and the registry the API validates names against."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from PIL import Image

from pocdojo.media.video.midnight import Midnight
from pocdojo.media.video.model import VideoSpec, YearTotals
from pocdojo.media.video.motion import Transition
from pocdojo.media.video.paper import Paper


class Template(Protocol):
    """A look for the yearly video: every still it shows and how one leads to the next.

    Every image is RGB at the video's size. Drawing stills is all a template does; it only
    names its transition, and timing, transitions and encoding are the renderer's.
    """

    @property
    def name(self) -> str:
        """The key in ``TEMPLATES``."""
        ...

    @property
    def label(self) -> str:
        """A human name for pickers."""
        ...

    def blank(self) -> Image.Image:
        """The background alone: the video fades in from it and out to it."""
        ...

    def intro(self, spec: VideoSpec) -> Image.Image:
        """The opening still: year, owner, company."""
        ...

    def card(self, spec: VideoSpec, index: int) -> Image.Image:
        """The still for ``spec.pocs[index]``."""
        ...

    def outro(self, spec: VideoSpec, totals: YearTotals) -> Image.Image:
        """The closing still: the year's totals."""
        ...

    @property
    def transition(self) -> Transition:
        """How one segment gives way to the next (the video fades in and out regardless)."""
        ...


TEMPLATES: Mapping[str, Template] = MappingProxyType(
    {template.name: template for template in (Midnight(), Paper())}
)
"""Templates by name; ``"default"`` is the dark one, ``"minimal"`` the light one."""


def template_named(name: str) -> Template:
    """The template called ``name``.

    Raises:
        ValueError: No template has that name.
    """
    try:
        return TEMPLATES[name]
    except KeyError:
        known = ", ".join(sorted(TEMPLATES))
        raise ValueError(f"unknown video template {name!r} (known: {known})") from None
