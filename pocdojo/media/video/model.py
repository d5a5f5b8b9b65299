"""What a yearly video shows, its fixed format, and the year's totals drawn on the outro."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Final

WIDTH: Final = 1280
HEIGHT: Final = 720
FPS: Final = 30

INTRO_SECONDS: Final = 3.0
CARD_SECONDS: Final = 3.0
OUTRO_SECONDS: Final = 4.0
# Transitions and fades happen inside a segment's time, so durations add up exactly.
TRANSITION_FRAMES: Final = 10
FADE_IN_FRAMES: Final = 12
FADE_OUT_FRAMES: Final = 15

THUMBNAIL_SIZE: Final = (640, 360)

TOP_TAGS: Final = 5


@dataclass(frozen=True)
class VideoPoc:
    """One POC as its card shows it.

    Attributes:
        title: The POC's title (any length; long titles wrap, then end with an ellipsis).
        language: Its programming language.
        tags: Its tags, in the order to show them.
        created_at: When it was registered; the card shows the date.
        description: Its description; the card shows the beginning. May be empty.
        views: How often it was viewed (shown only with metrics).
        favorites: How many users favourited it (shown only with metrics).
    """

    title: str
    language: str
    tags: tuple[str, ...]
    created_at: datetime
    description: str
    views: int
    favorites: int


@dataclass(frozen=True)
class VideoSpec:
    """Everything a yearly video shows.

    Attributes:
        year: The year the video is about.
        owner_name: The user's display name, on the intro.
        company: The tenant's name, on the intro.
        pocs: The POCs, one card each, in the order given.
        include_metrics: Whether cards and the outro show views and favorites.
        template: A key of ``TEMPLATES``.
    """

    year: int
    owner_name: str
    company: str
    pocs: tuple[VideoPoc, ...]
    include_metrics: bool
    template: str


@dataclass(frozen=True)
class VideoResult:
    """What was rendered.

    Attributes:
        duration_seconds: The video's length.
        frames: How many frames it has.
        cards: How many POC cards it has.
        width: Frame width in pixels.
        height: Frame height in pixels.
    """

    duration_seconds: float
    frames: int
    cards: int
    width: int
    height: int


@dataclass(frozen=True)
class YearTotals:
    """The year at a glance, for the outro.

    Attributes:
        pocs: How many POCs.
        languages: Languages used, most used first.
        top_tags: The most used tags, most used first.
        views: Total views.
        favorites: Total favorites.
        most_viewed: The title of the most viewed POC.
    """

    pocs: int
    languages: tuple[str, ...]
    top_tags: tuple[str, ...]
    views: int
    favorites: int
    most_viewed: str


def _ranked(counts: Counter[str]) -> tuple[str, ...]:
    # Ties go alphabetically so the same POCs always give the same outro.
    return tuple(name for name, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def year_totals(pocs: tuple[VideoPoc, ...]) -> YearTotals:
    """Sum up ``pocs`` (at least one) for the outro."""
    languages = Counter(poc.language.strip() for poc in pocs if poc.language.strip())
    tags = Counter(tag.strip() for poc in pocs for tag in set(poc.tags) if tag.strip())
    most_viewed = max(pocs, key=lambda poc: poc.views)
    return YearTotals(
        pocs=len(pocs),
        languages=_ranked(languages),
        top_tags=_ranked(tags)[:TOP_TAGS],
        views=sum(poc.views for poc in pocs),
        favorites=sum(poc.favorites for poc in pocs),
        most_viewed=most_viewed.title,
    )


def segment_frames(cards: int) -> tuple[int, ...]:
    """Frames per segment: the intro, each card, the outro."""
    return (
        round(INTRO_SECONDS * FPS),
        *(round(CARD_SECONDS * FPS) for _ in range(cards)),
        round(OUTRO_SECONDS * FPS),
    )
