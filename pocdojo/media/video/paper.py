"""The "minimal" template: warm paper, ink, one vermilion accent, serif titles, mono details.

Cards are editorial: a large pale index number behind the top right, a mono kicker with
language and date, a serif title, a short accent rule, the description, tags as ``#words``
and a footer line with the position and, with metrics, the numbers. Each segment is wiped
in from the left behind an accent bar.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from pocdojo.media.video import paint
from pocdojo.media.video.model import HEIGHT, WIDTH, VideoSpec, YearTotals
from pocdojo.media.video.motion import Transition
from pocdojo.media.video.paint import compact_number, hex_color, plural
from pocdojo.media.video.text import ellipsize, face, plain, wrap

_PAPER = hex_color("#F3EFE6")
_INK = hex_color("#1B1B1B")
_MUTED = hex_color("#6E6A62")
_FAINT = hex_color("#E1DACB")
_RULE = hex_color("#CFC6B4")
_ACCENT = hex_color("#E4572E")

_LEFT = 120
_RIGHT = WIDTH - 120
_CENTER = WIDTH // 2


class Paper:
    """Light template; see the module docstring."""

    name = "minimal"
    label = "Paper"
    transition = Transition("wipe", edge=_ACCENT)

    def blank(self) -> Image.Image:
        """The bare background: the first and last frame of the video."""
        return Image.new("RGB", (WIDTH, HEIGHT), _PAPER)

    def intro(self, spec: VideoSpec) -> Image.Image:
        """Year, owner and company, centred."""
        image = self.blank()
        draw = ImageDraw.Draw(image)
        face("mono", 22).draw_centered(draw, _CENTER, 210, "Y E A R   I N   R E V I E W", _ACCENT)
        face("serif-bold", 170).draw_centered(draw, _CENTER, 390, str(spec.year), _INK)
        draw.rectangle((_CENTER - 40, 428, _CENTER + 40, 431), fill=_ACCENT)
        name = face("serif", 46)
        owner = ellipsize(spec.owner_name, name, _RIGHT - _LEFT)
        name.draw_centered(draw, _CENTER, 510, owner, _INK)
        company = face("mono", 24)
        company_line = ellipsize(spec.company.upper(), company, _RIGHT - _LEFT)
        company.draw_centered(draw, _CENTER, 556, company_line, _MUTED)
        count = plural(len(spec.pocs), "proof of concept", "proofs of concept")
        face("mono", 20).draw_centered(draw, _CENTER, 660, count, _MUTED)
        return image

    def card(self, spec: VideoSpec, index: int) -> Image.Image:
        """One POC: kicker, title, description, tags, footer with position and metrics."""
        poc = spec.pocs[index]
        image = self.blank()
        draw = ImageDraw.Draw(image)
        face("mono-bold", 250).draw_right(draw, WIDTH - 70, 290, f"{index + 1:02d}", _FAINT)

        kicker = face("mono", 22)
        date = paint.short_date(poc.created_at).upper()
        language = ellipsize((poc.language or "-").upper(), kicker, 520)
        kicker.draw(draw, _LEFT, 150, f"{language}  /  {date}", _ACCENT)

        title_face = face("serif-bold", 56)
        title = wrap(poc.title, title_face, 860, 3) or ["Untitled"]
        y = paint.text_lines(draw, title_face, title, _LEFT, 232, 68, _INK)
        draw.rectangle((_LEFT, y + 30, _LEFT + 64, y + 33), fill=_ACCENT)

        body = face("sans", 26)
        lines = wrap(plain(poc.description), body, 860, 5 - len(title))
        paint.text_lines(draw, body, lines, _LEFT, y + 84, 38, _MUTED)

        self._tags(draw, poc.tags)
        draw.line((_LEFT, 646, _RIGHT, 646), fill=_RULE, width=1)
        footer = face("mono", 20)
        footer.draw(draw, _LEFT, 684, f"{index + 1:02d} / {len(spec.pocs):02d}", _MUTED)
        if spec.include_metrics:
            self._metrics(draw, poc.views, poc.favorites)
        return image

    def _tags(self, draw: ImageDraw.ImageDraw, tags: tuple[str, ...]) -> None:
        tag_face = face("mono", 22)
        labels = [ellipsize(f"#{tag.strip()}", tag_face, 400) for tag in tags if tag.strip()]
        layout = paint.flow(labels, tag_face.length, _RIGHT - _LEFT, 2, 26)
        top = 610 - 36 * (len(layout.rows) - 1)
        for number, row in enumerate(layout.rows):
            for label, x in row:
                color = _MUTED if label.startswith("+") else _INK
                tag_face.draw(draw, _LEFT + x, top + number * 36, label, color)

    def _metrics(self, draw: ImageDraw.ImageDraw, views: int, favorites: int) -> None:
        number, label = face("mono-bold", 24), face("mono", 20)
        right = float(_RIGHT)
        for value, caption in ((favorites, " favorites"), (views, " views   ")):
            label.draw_right(draw, right, 684, caption, _MUTED)
            right -= label.length(caption)
            number.draw_right(draw, right, 684, compact_number(value), _INK)
            right -= number.length(compact_number(value))

    def outro(self, spec: VideoSpec, totals: YearTotals) -> Image.Image:
        """The year's totals as a ledger of label and value rows."""
        image = self.blank()
        draw = ImageDraw.Draw(image)
        face("serif-bold", 56).draw(draw, _LEFT, 160, f"{spec.year}, in short.", _INK)
        rows = [
            ("POCs", f"{totals.pocs:,}"),
            ("Languages", f"{len(totals.languages)}  ·  " + ", ".join(totals.languages)),
            ("Top tags", "  ".join(f"#{tag}" for tag in totals.top_tags) or "-"),
        ]
        if spec.include_metrics:
            rows += [
                ("Views", f"{totals.views:,}"),
                ("Favorites", f"{totals.favorites:,}"),
                ("Most viewed", totals.most_viewed),
            ]
        label, value = face("mono", 22), face("mono-bold", 26)
        for number, (caption, text) in enumerate(rows):
            baseline = 250 + number * 62
            label.draw(draw, _LEFT, baseline, caption.upper(), _MUTED)
            value.draw_right(draw, _RIGHT, baseline, ellipsize(text, value, 760), _INK)
            draw.line((_LEFT, baseline + 20, _RIGHT, baseline + 20), fill=_RULE, width=1)
        face("mono", 22).draw(draw, _LEFT, 676, f"see you in {spec.year + 1}", _ACCENT)
        return image
