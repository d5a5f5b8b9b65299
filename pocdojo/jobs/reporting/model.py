"""Report input rows, the aggregated report, and ``build_report`` which turns one into the other.

A report is a tuple of named sections; each section is one table (typed columns, rows) with an
optional chart hint. Renderers only lay sections out: every number is computed here, once, so
the four formats always agree.

Machine names (section names, column names) are camelCase like the rest of the public API;
column labels are what people read.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal
from uuid import UUID

ReportType = Literal["summary", "detailed", "analytics", "usage"]
REPORT_TYPES: tuple[ReportType, ...] = ("summary", "detailed", "analytics", "usage")
ColumnKind = Literal["str", "int", "float", "date", "datetime"]
Cell = str | int | float | date | datetime | None
Row = tuple[Cell, ...]

TOP_TAGS = 20
TOP_POCS = 20


@dataclass(frozen=True)
class ReportPoc:
    """One POC as the report sees it; the caller has already applied the report's filters."""

    poc_id: UUID
    title: str
    language: str
    tags: tuple[str, ...]
    owner_id: UUID
    owner_name: str
    status: str
    created_at: datetime
    views: int
    favorites: int


@dataclass(frozen=True)
class ReportRequest:
    """What was asked for, and by whom; printed on the report's first page.

    Raises:
        ValueError: the type is unknown or the range ends before it starts.
    """

    report_type: ReportType
    start: date
    end: date
    language: str | None
    tags: tuple[str, ...]
    user_id: UUID | None
    tenant_name: str
    requested_by: str
    generated_at: datetime

    def __post_init__(self) -> None:
        if self.report_type not in REPORT_TYPES:
            raise ValueError(f"unknown report type {self.report_type!r}")
        if self.end < self.start:
            raise ValueError("the date range ends before it starts")


@dataclass(frozen=True)
class Column:
    """A typed column.

    ``monthly`` marks a date column holding the first day of each month; ``decimals`` is how
    many decimals a float column shows (values are rounded to that already).
    """

    name: str
    kind: ColumnKind
    label: str
    monthly: bool = False
    decimals: int = 2

    @property
    def numeric(self) -> bool:
        """True for int and float columns (right-aligned, summable)."""
        return self.kind in ("int", "float")


@dataclass(frozen=True)
class ChartHint:
    """How a section may be charted: ``value`` against ``category``, at most ``limit`` rows."""

    kind: Literal["bar", "hbar"]
    category: str
    value: str
    limit: int | None = None


@dataclass(frozen=True)
class Section:
    """One table of the report."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    chart: ChartHint | None = None

    def column_index(self, name: str) -> int:
        """The position of the column called ``name``.

        Raises:
            KeyError: no such column.
        """
        for i, column in enumerate(self.columns):
            if column.name == name:
                return i
        raise KeyError(name)

    def records(self) -> list[dict[str, Cell]]:
        """The rows as ``{column name: value}`` mappings."""
        names = [c.name for c in self.columns]
        return [dict(zip(names, row, strict=True)) for row in self.rows]


@dataclass(frozen=True)
class Report:
    """The aggregated report: the request and its sections, in reading order."""

    request: ReportRequest
    sections: tuple[Section, ...]
    poc_count: int = field(default=0)

    def section(self, name: str) -> Section:
        """The section called ``name``.

        Raises:
            KeyError: the report has no such section.
        """
        for section in self.sections:
            if section.name == name:
                return section
        raise KeyError(name)


# --- Building -----------------------------------------------------------------------------------


def build_report(request: ReportRequest, pocs: Iterable[ReportPoc]) -> Report:
    """Aggregate ``pocs`` into the sections ``request.report_type`` asks for.

    Every type starts with totals, POCs per month, per language and top tags; ``detailed``
    adds one row per POC, ``analytics`` popularity, averages, engagement and growth, ``usage``
    per-user activity. Orders are stable: ties are broken by name, then by id.

    Args:
        request: the report's parameters; its range sets the months listed.
        pocs: the POCs, already filtered by the caller.

    Returns:
        The report.
    """
    rows = sorted(pocs, key=_chronological)
    months = _months(request, rows)
    sections = [_totals(rows), _per_month(rows, months), _per_language(rows), _top_tags(rows)]
    sections.extend(_EXTRA[request.report_type](rows, months))
    return Report(request=request, sections=tuple(sections), poc_count=len(rows))


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _chronological(poc: ReportPoc) -> tuple[datetime, str, str]:
    return utc(poc.created_at), poc.title, str(poc.poc_id)


def _month_of(poc: ReportPoc) -> date:
    return utc(poc.created_at).date().replace(day=1)


def _months(request: ReportRequest, rows: Sequence[ReportPoc]) -> list[date]:
    """Every month from the range's first to its last, zeros included.

    A POC outside the range (the caller filters by UTC instants, so this should not happen)
    widens the list rather than vanishing from the per-month counts while staying in the totals.
    """
    first, last = request.start.replace(day=1), request.end.replace(day=1)
    if rows:
        first, last = min(first, _month_of(rows[0])), max(last, _month_of(rows[-1]))
    months = []
    month = first
    while month <= last:
        months.append(month)
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return months


def _share(part: int, whole: int) -> float:
    return round(100 * part / whole, 2) if whole else 0.0


def _average(total: int, count: int) -> float:
    return round(total / count, 2) if count else 0.0


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _by_language(rows: Iterable[ReportPoc]) -> dict[str, list[ReportPoc]]:
    groups: dict[str, list[ReportPoc]] = defaultdict(list)
    for poc in rows:
        groups[poc.language].append(poc)
    # Most POCs first; equal counts in name order.
    return dict(sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])))


# --- Sections every type has ----------------------------------------------------------------------


def _totals(rows: Sequence[ReportPoc]) -> Section:
    statuses = Counter(p.status for p in rows)
    return Section(
        name="totals",
        title="Totals",
        columns=(
            Column("pocs", "int", "POCs"),
            Column("active", "int", "Active"),
            Column("archived", "int", "Archived"),
            Column("owners", "int", "Owners"),
            Column("views", "int", "Views"),
            Column("favorites", "int", "Favorites"),
        ),
        rows=(
            (
                len(rows),
                statuses["active"],
                statuses["archived"],
                len({p.owner_id for p in rows}),
                sum(p.views for p in rows),
                sum(p.favorites for p in rows),
            ),
        ),
    )


def _per_month(rows: Sequence[ReportPoc], months: Sequence[date]) -> Section:
    counts = Counter(_month_of(p) for p in rows)
    return Section(
        name="pocsPerMonth",
        title="POCs per month",
        columns=(Column("month", "date", "Month", monthly=True), Column("pocs", "int", "POCs")),
        rows=tuple((month, counts[month]) for month in months),
        chart=ChartHint("bar", category="month", value="pocs"),
    )


def _per_language(rows: Sequence[ReportPoc]) -> Section:
    return Section(
        name="pocsPerLanguage",
        title="POCs per language",
        columns=(
            Column("language", "str", "Language"),
            Column("pocs", "int", "POCs"),
            Column("sharePct", "float", "Share %"),
            Column("views", "int", "Views"),
            Column("favorites", "int", "Favorites"),
        ),
        rows=tuple(
            (
                language,
                len(group),
                _share(len(group), len(rows)),
                sum(p.views for p in group),
                sum(p.favorites for p in group),
            )
            for language, group in _by_language(rows).items()
        ),
        chart=ChartHint("hbar", category="language", value="pocs", limit=15),
    )


def _top_tags(rows: Sequence[ReportPoc]) -> Section:
    # A tag repeated on one POC counts once for it.
    counts = Counter(tag for p in rows for tag in set(p.tags) if tag)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_TAGS]
    return Section(
        name="topTags",
        title=f"Top {TOP_TAGS} tags",
        columns=(
            Column("rank", "int", "Rank"),
            Column("tag", "str", "Tag"),
            Column("pocs", "int", "POCs"),
            Column("sharePct", "float", "Share of POCs %"),
        ),
        rows=tuple((rank, tag, n, _share(n, len(rows))) for rank, (tag, n) in enumerate(ranked, 1)),
        chart=ChartHint("hbar", category="tag", value="pocs"),
    )


# --- Sections of one type -----------------------------------------------------------------------


def _detailed(rows: Sequence[ReportPoc], months: Sequence[date]) -> list[Section]:
    section = Section(
        name="pocs",
        title="POCs",
        columns=(
            Column("pocId", "str", "POC id"),
            Column("title", "str", "Title"),
            Column("language", "str", "Language"),
            Column("tags", "str", "Tags"),
            Column("owner", "str", "Owner"),
            Column("status", "str", "Status"),
            Column("createdAt", "datetime", "Created (UTC)"),
            Column("views", "int", "Views"),
            Column("favorites", "int", "Favorites"),
        ),
        rows=tuple(
            (
                str(p.poc_id),
                p.title,
                p.language,
                ", ".join(p.tags),
                p.owner_name,
                p.status,
                utc(p.created_at),
                p.views,
                p.favorites,
            )
            for p in rows
        ),
    )
    return [section]


def _analytics(rows: Sequence[ReportPoc], months: Sequence[date]) -> list[Section]:
    return [_top_pocs(rows), _language_averages(rows), _engagement(rows), _growth(rows, months)]


def _top_pocs(rows: Sequence[ReportPoc]) -> Section:
    ranked = sorted(rows, key=lambda p: (-(p.views + p.favorites), p.title, str(p.poc_id)))
    return Section(
        name="topPocs",
        title=f"Top {TOP_POCS} POCs by popularity",
        columns=(
            Column("rank", "int", "Rank"),
            Column("title", "str", "Title"),
            Column("language", "str", "Language"),
            Column("owner", "str", "Owner"),
            Column("views", "int", "Views"),
            Column("favorites", "int", "Favorites"),
            Column("popularity", "int", "Views + favorites"),
        ),
        rows=tuple(
            (rank, p.title, p.language, p.owner_name, p.views, p.favorites, p.views + p.favorites)
            for rank, p in enumerate(ranked[:TOP_POCS], 1)
        ),
    )


def _language_averages(rows: Sequence[ReportPoc]) -> Section:
    table = []
    for language, group in _by_language(rows).items():
        views, favorites = sum(p.views for p in group), sum(p.favorites for p in group)
        table.append(
            (
                language,
                len(group),
                _average(views, len(group)),
                _average(favorites, len(group)),
                _ratio(favorites, views),
            )
        )
    return Section(
        name="languageAverages",
        title="Averages per language",
        columns=(
            Column("language", "str", "Language"),
            Column("pocs", "int", "POCs"),
            Column("avgViews", "float", "Avg views"),
            Column("avgFavorites", "float", "Avg favorites"),
            Column("favoritesPerView", "float", "Favorites / view", decimals=4),
        ),
        rows=tuple(table),
    )


def _engagement(rows: Sequence[ReportPoc]) -> Section:
    views, favorites = sum(p.views for p in rows), sum(p.favorites for p in rows)
    return Section(
        name="engagement",
        title="Engagement",
        columns=(
            Column("views", "int", "Views"),
            Column("favorites", "int", "Favorites"),
            Column("favoritesPerView", "float", "Favorites / view", decimals=4),
            Column("avgViews", "float", "Avg views per POC"),
            Column("avgFavorites", "float", "Avg favorites per POC"),
        ),
        rows=(
            (
                views,
                favorites,
                _ratio(favorites, views),
                _average(views, len(rows)),
                _average(favorites, len(rows)),
            ),
        ),
    )


def _growth(rows: Sequence[ReportPoc], months: Sequence[date]) -> Section:
    counts = Counter(_month_of(p) for p in rows)
    table: list[Row] = []
    previous: int | None = None
    for month in months:
        current = counts[month]
        change = None if previous is None else current - previous
        pct = round(100 * (current - previous) / previous, 2) if previous else None
        table.append((month, current, change, pct))
        previous = current
    return Section(
        name="growth",
        title="Month-over-month growth",
        columns=(
            Column("month", "date", "Month", monthly=True),
            Column("pocs", "int", "POCs"),
            Column("change", "int", "Change"),
            Column("growthPct", "float", "Growth %"),
        ),
        rows=tuple(table),
    )


def _usage(rows: Sequence[ReportPoc], months: Sequence[date]) -> list[Section]:
    groups: dict[UUID, list[ReportPoc]] = defaultdict(list)
    for poc in rows:
        groups[poc.owner_id].append(poc)
    table = []
    for owner_id, group in groups.items():
        languages = sorted({p.language for p in group})
        table.append(
            (
                group[0].owner_name,
                str(owner_id),
                len(group),
                sum(p.views for p in group),
                sum(p.favorites for p in group),
                len(languages),
                ", ".join(languages),
            )
        )
    # Most POCs first; then by name, and by id for namesakes.
    table.sort(key=lambda r: (-r[2], r[0], r[1]))
    section = Section(
        name="userActivity",
        title="Activity per user",
        columns=(
            Column("owner", "str", "Owner"),
            Column("userId", "str", "User id"),
            Column("pocs", "int", "POCs created"),
            Column("views", "int", "Views received"),
            Column("favorites", "int", "Favorites received"),
            Column("languageCount", "int", "Languages"),
            Column("languages", "str", "Languages used"),
        ),
        rows=tuple(table),
    )
    return [section]


def _none(rows: Sequence[ReportPoc], months: Sequence[date]) -> list[Section]:
    return []


_EXTRA: dict[str, Callable[[Sequence[ReportPoc], Sequence[date]], list[Section]]] = {
    "summary": _none,
    "detailed": _detailed,
    "analytics": _analytics,
    "usage": _usage,
}
