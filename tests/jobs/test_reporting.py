"""Report aggregation and the four writers, each file opened again with a real reader.

Expected numbers are computed here from the generated POCs with plain loops, never read from
one writer to check another.
"""

from __future__ import annotations

import csv
import io
import json
import random
import zipfile
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import openpyxl
import pytest
from pypdf import PdfReader

from pocdojo.jobs.reporting import (
    CONTENT_TYPES,
    EXTENSIONS,
    FORMATS,
    RENDERERS,
    Report,
    ReportPoc,
    ReportRequest,
    build_report,
    render_pdf,
)
from pocdojo.jobs.reporting.model import REPORT_TYPES, TOP_TAGS, Cell, Section
from pocdojo.jobs.reporting.pdf_fonts import PdfFonts, default_fonts, find_fonts
from pocdojo.jobs.reporting.tabular import neutralize
from pocdojo.jobs.reporting.xlsx import sheet_names

START, END = date(2024, 1, 1), date(2024, 12, 31)
# May and everything after September stay empty: those months must still be listed, with 0.
BUSY_MONTHS = (1, 2, 3, 4, 6, 7, 8, 9)
OWNERS = (
    (UUID(int=1), "Ada Lovelace"),
    (UUID(int=2), "Zoë Ωmega"),
    (UUID(int=3), "李雷"),
    (UUID(int=4), "Grace Hopper"),
)
LANGUAGES = ("Python", "Go", "Rust", "TypeScript")
TAGS = ("api", "ml", "crdt", "déjà-vu", "日本語", "perf", "security")
TITLES = ("Kafka lag exporter", "Ζήτω CRDT sync", "東京 latency probe 🚀", "Café façade")
INJECTION_TITLE = "=cmd|' /C calc'!A0"
TENANT = "Acme Café"  # Latin-1 only, so it reads back the same with or without a Unicode font


def poc(
    n: int,
    *,
    title: str = "POC",
    language: str = "Python",
    tags: tuple[str, ...] = (),
    owner: int = 0,
    status: str = "active",
    created: datetime | None = None,
    views: int = 0,
    favorites: int = 0,
) -> ReportPoc:
    """One POC with id ``n``; what a test does not care about has a plain default."""
    owner_id, owner_name = OWNERS[owner]
    return ReportPoc(
        poc_id=UUID(int=1000 + n),
        title=title,
        language=language,
        tags=tags,
        owner_id=owner_id,
        owner_name=owner_name,
        status=status,
        created_at=created or datetime(2024, 3, 1, 12, tzinfo=UTC),
        views=views,
        favorites=favorites,
    )


def generated_pocs(count: int = 150, seed: int = 7) -> list[ReportPoc]:
    """``count`` POCs over the busy months, several owners, languages, tags, unicode titles."""
    rng = random.Random(seed)
    pocs = []
    for n in range(count):
        month = BUSY_MONTHS[n % len(BUSY_MONTHS)]
        title = INJECTION_TITLE if n == 5 else f"{rng.choice(TITLES)} {n}"
        pocs.append(
            poc(
                n,
                title=title,
                language=rng.choice(LANGUAGES),
                tags=tuple(rng.sample(TAGS, rng.randint(0, 3))),
                owner=rng.randrange(len(OWNERS)),
                status="archived" if rng.random() < 0.25 else "active",
                created=datetime(2024, month, rng.randint(1, 28), rng.randrange(24), tzinfo=UTC),
                views=rng.randrange(2000),
                favorites=rng.randrange(80),
            )
        )
    return pocs


def request(report_type: str = "summary", **changes: Any) -> ReportRequest:
    base = ReportRequest(
        report_type=report_type,  # type: ignore[arg-type]
        start=START,
        end=END,
        language=None,
        tags=("api",),
        user_id=None,
        tenant_name=TENANT,
        requested_by="Grace Hopper",
        generated_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    return replace(base, **changes)


def expected_totals(pocs: list[ReportPoc]) -> dict[str, int]:
    return {
        "pocs": len(pocs),
        "active": sum(1 for p in pocs if p.status == "active"),
        "archived": sum(1 for p in pocs if p.status == "archived"),
        "owners": len({p.owner_id for p in pocs}),
        "views": sum(p.views for p in pocs),
        "favorites": sum(p.favorites for p in pocs),
    }


def expected_months(pocs: list[ReportPoc]) -> dict[date, int]:
    counts = {date(2024, m, 1): 0 for m in range(1, 13)}
    for p in pocs:
        counts[p.created_at.date().replace(day=1)] += 1
    return counts


def records(section: Section) -> list[dict[str, Any]]:
    return section.records()


def by_first_column(section: Section) -> dict[Cell, Cell]:
    return {row[0]: row[1] for row in section.rows}


@pytest.fixture(scope="module")
def pocs() -> list[ReportPoc]:
    return generated_pocs()


# --- Aggregation ----------------------------------------------------------------------------------


def test_every_type_starts_with_the_common_sections() -> None:
    extra = {
        "summary": [],
        "detailed": ["pocs"],
        "analytics": ["topPocs", "languageAverages", "engagement", "growth"],
        "usage": ["userActivity"],
    }
    for report_type in REPORT_TYPES:
        report = build_report(request(report_type), generated_pocs(20))
        names = [s.name for s in report.sections]
        common = ["totals", "pocsPerMonth", "pocsPerLanguage", "topTags"]
        assert names == common + extra[report_type]


def test_totals_count_statuses_owners_views_and_favorites(pocs: list[ReportPoc]) -> None:
    report = build_report(request(), pocs)
    assert records(report.section("totals")) == [expected_totals(pocs)]
    assert report.poc_count == len(pocs)


def test_every_month_of_the_range_is_listed_with_zeros(pocs: list[ReportPoc]) -> None:
    section = build_report(request(), pocs).section("pocsPerMonth")
    assert by_first_column(section) == expected_months(pocs)
    assert [r[0] for r in section.rows] == [date(2024, m, 1) for m in range(1, 13)]
    assert by_first_column(section)[date(2024, 5, 1)] == 0


def test_months_follow_the_range_across_a_new_year() -> None:
    report = build_report(request(start=date(2023, 11, 15), end=date(2024, 2, 3)), [])
    months = [r[0] for r in report.section("pocsPerMonth").rows]
    assert months == [date(2023, 11, 1), date(2023, 12, 1), date(2024, 1, 1), date(2024, 2, 1)]


def test_months_are_counted_in_utc() -> None:
    # 23:30 on Jan 31 at UTC-5 is 04:30 on Feb 1 in UTC.
    local = datetime(2024, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    rows = by_first_column(build_report(request(), [poc(1, created=local)]).section("pocsPerMonth"))
    assert rows[date(2024, 2, 1)] == 1
    assert rows[date(2024, 1, 1)] == 0


def test_languages_by_count_then_name() -> None:
    pocs = [
        *(poc(i, language="Rust", views=10) for i in range(2)),
        *(poc(10 + i, language="Go", views=1) for i in range(2)),
        *(poc(20 + i, language="Python", favorites=3) for i in range(3)),
    ]
    section = build_report(request(), pocs).section("pocsPerLanguage")
    assert [(r[0], r[1]) for r in section.rows] == [("Python", 3), ("Go", 2), ("Rust", 2)]
    assert records(section)[0] == {
        "language": "Python",
        "pocs": 3,
        "sharePct": round(100 * 3 / 7, 2),
        "views": 0,
        "favorites": 9,
    }


def test_top_tags_by_count_then_name_at_most_twenty() -> None:
    # tag-00 on 30 POCs, tag-01 on 29, ...; tag-05 and tag-06 both on 25: a tie.
    counts = {f"tag-{i:02d}": 30 - i for i in range(30)}
    counts["tag-06"] = counts["tag-05"]
    pocs = [
        poc(i, tags=(*tuple(t for t, n in counts.items() if i < n), "tag-00")) for i in range(30)
    ]
    rows = build_report(request(), pocs).section("topTags").rows
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_TAGS]
    assert [(r[1], r[2]) for r in rows] == expected  # a tag twice on a POC counts once
    assert [r[0] for r in rows] == list(range(1, TOP_TAGS + 1))
    assert rows[5][1:3] == ("tag-05", 25)
    assert rows[6][1:3] == ("tag-06", 25)


def test_detailed_lists_every_poc_oldest_first() -> None:
    pocs = generated_pocs(40)
    section = build_report(request("detailed"), pocs).section("pocs")
    assert sorted(str(r[0]) for r in section.rows) == sorted(str(p.poc_id) for p in pocs)
    created = [r[6] for r in section.rows]
    assert created == sorted(p.created_at for p in pocs)
    first = min(pocs, key=lambda p: p.created_at)
    assert records(section)[0] == {
        "pocId": str(first.poc_id),
        "title": first.title,
        "language": first.language,
        "tags": ", ".join(first.tags),
        "owner": first.owner_name,
        "status": first.status,
        "createdAt": first.created_at,
        "views": first.views,
        "favorites": first.favorites,
    }


def test_same_time_pocs_sort_by_title() -> None:
    same = datetime(2024, 6, 1, tzinfo=UTC)
    pocs = [poc(1, title="beta", created=same), poc(2, title="alpha", created=same)]
    rows = build_report(request("detailed"), pocs).section("pocs").rows
    assert [r[1] for r in rows] == ["alpha", "beta"]


def test_top_pocs_by_views_plus_favorites_ties_by_title() -> None:
    pocs = [
        poc(1, title="b", views=10, favorites=5),
        poc(2, title="a", views=14, favorites=1),  # 15 too: before "b"
        poc(3, title="c", views=100),
        poc(4, title="d"),
    ]
    rows = build_report(request("analytics"), pocs).section("topPocs").rows
    assert [(r[0], r[1], r[6]) for r in rows] == [
        (1, "c", 100),
        (2, "a", 15),
        (3, "b", 15),
        (4, "d", 0),
    ]


def test_language_averages_and_engagement() -> None:
    pocs = [
        poc(1, language="Go", views=10, favorites=1),
        poc(2, language="Go", views=20, favorites=2),
        poc(3, language="Rust", views=0, favorites=0),
    ]
    report = build_report(request("analytics"), pocs)
    assert records(report.section("languageAverages")) == [
        {
            "language": "Go",
            "pocs": 2,
            "avgViews": 15.0,
            "avgFavorites": 1.5,
            "favoritesPerView": 0.1,
        },
        {
            "language": "Rust",
            "pocs": 1,
            "avgViews": 0.0,
            "avgFavorites": 0.0,
            "favoritesPerView": None,
        },
    ]
    assert records(report.section("engagement")) == [
        {
            "views": 30,
            "favorites": 3,
            "favoritesPerView": 0.1,
            "avgViews": 10.0,
            "avgFavorites": 1.0,
        }
    ]


def test_growth_month_over_month() -> None:
    def at(month: int) -> datetime:
        return datetime(2024, month, 10, tzinfo=UTC)

    pocs = [
        poc(1, created=at(1)),
        poc(2, created=at(1)),
        *(poc(10 + i, created=at(3)) for i in range(3)),
    ]
    report = build_report(request("analytics", end=date(2024, 4, 30)), pocs)
    assert report.section("growth").rows == (
        (date(2024, 1, 1), 2, None, None),
        (date(2024, 2, 1), 0, -2, -100.0),
        (date(2024, 3, 1), 3, 3, None),  # from zero: no percentage
        (date(2024, 4, 1), 0, -3, -100.0),
    )


def test_usage_per_user_by_count_then_name() -> None:
    pocs = [
        poc(1, owner=0, language="Go", views=5, favorites=1),
        poc(2, owner=0, language="Python", views=7),
        poc(3, owner=3, language="Rust", favorites=4),
        poc(4, owner=3, language="Rust"),
        poc(5, owner=1, language="Go"),
    ]
    rows = build_report(request("usage"), pocs).section("userActivity").rows
    assert rows == (
        ("Ada Lovelace", str(UUID(int=1)), 2, 12, 1, 2, "Go, Python"),
        ("Grace Hopper", str(UUID(int=4)), 2, 0, 4, 1, "Rust"),
        ("Zoë Ωmega", str(UUID(int=2)), 1, 0, 0, 1, "Go"),
    )


def test_build_does_not_depend_on_input_order(pocs: list[ReportPoc]) -> None:
    for report_type in REPORT_TYPES:
        shuffled = list(pocs)
        random.Random(3).shuffle(shuffled)
        assert build_report(request(report_type), shuffled) == build_report(
            request(report_type), pocs
        )


def test_request_rejects_a_reversed_range_and_unknown_type() -> None:
    with pytest.raises(ValueError, match="ends before"):
        request(start=date(2024, 2, 1), end=date(2024, 1, 1))
    with pytest.raises(ValueError, match="unknown report type"):
        request("weekly")


# --- Writers: one file per type and format, read back -------------------------------------------


def render(report: Report, fmt: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{report.request.report_type}.{EXTENSIONS[fmt]}"
    RENDERERS[fmt](report, path)
    assert path.stat().st_size > 0
    return path


def test_registry_covers_every_format() -> None:
    assert set(RENDERERS) == set(CONTENT_TYPES) == set(EXTENSIONS) == set(FORMATS)
    assert CONTENT_TYPES["pdf"] == "application/pdf"


def contains_run(tokens: list[str], run: list[str]) -> bool:
    return any(tokens[i : i + len(run)] == run for i in range(len(tokens)))


def pdf_text(path: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


@pytest.mark.parametrize("report_type", REPORT_TYPES)
def test_pdf_title_page_totals_and_pages(
    report_type: str, pocs: list[ReportPoc], tmp_path: Path
) -> None:
    pages = pdf_text(render(build_report(request(report_type), pocs), "pdf", tmp_path))
    title = pages[0]
    for text in (report_type, TENANT, "2024-01-01 to 2024-12-31", "api", "Grace Hopper"):
        assert text in title
    assert "2025-01-02 03:04:05 UTC" in title
    body = "\n".join(pages[1:])
    totals = expected_totals(pocs)
    # The totals row, cell after cell in column order, whatever line breaks extraction adds.
    assert contains_run(body.split(), [f"{n:,}" for n in totals.values()])
    assert "POCs per month" in body
    # An empty month: a bar label and a table row (and a growth row in analytics).
    assert body.count("2024-05") == (3 if report_type == "analytics" else 2)
    assert "Top 20 tags" in body
    for number, text in enumerate(pages, 1):
        assert f"Page {number}" in text
    # Per-row pages only for the detailed report; the others fit a handful.
    assert 2 <= len(pages) <= (12 if report_type == "detailed" else 6)


def test_pdf_detailed_table_has_each_poc_once_and_a_header_per_page(tmp_path: Path) -> None:
    pocs = generated_pocs(400)
    pages = pdf_text(render(build_report(request("detailed"), pocs), "pdf", tmp_path))
    text = "\n".join(pages)
    for p in pocs:
        assert text.count(str(p.poc_id)) == 1
    table_pages = [t for t in pages if any(str(p.poc_id) in t for p in pocs)]
    assert len(table_pages) >= 400 // 45
    assert all("POC id" in t and "Created (UTC)" in t for t in table_pages)


def test_pdf_without_a_unicode_font_replaces_what_helvetica_cannot_draw(tmp_path: Path) -> None:
    pocs = [poc(1, title="Ζήτω CRDT", tags=("日本語",), views=7), poc(2, title="Café €5")]
    out = io.BytesIO()
    render_pdf(build_report(request("detailed"), pocs), out, fonts=PdfFonts.standard())
    text = "\n".join(p.extract_text() for p in PdfReader(out).pages)
    assert "???? CRDT" in text
    assert "Café €5" in text
    assert "\u0396" not in text  # the Greek capital zeta


def test_pdf_fonts_clean() -> None:
    standard = PdfFonts.standard()
    assert standard.clean("plain") == "plain"
    assert standard.clean("Zoë → Ω\n") == "Zoë ? ? "
    limited = PdfFonts("x", "y", frozenset(map(ord, "abΩ ")))
    assert limited.clean("ab Ω 漢") == "ab Ω ?"
    # Whatever the machine has, the chosen fonts can draw ASCII.
    assert default_fonts().clean("POC 42") == "POC 42"
    assert find_fonts((("no-such-font.ttf", "no-such-font-bold.ttf"),)) is None


@pytest.mark.parametrize("report_type", REPORT_TYPES)
def test_xlsx_sheets_headers_types_and_totals(
    report_type: str, pocs: list[ReportPoc], tmp_path: Path
) -> None:
    report = build_report(request(report_type), pocs)
    workbook = openpyxl.load_workbook(render(report, "xlsx", tmp_path))
    assert workbook.sheetnames == ["Report", *(s.title for s in report.sections)]
    for section in report.sections:
        sheet = workbook[section.title]
        header = [c.value for c in sheet[1]]
        assert header == [c.label for c in section.columns]
        assert sheet.freeze_panes == "A2"
        assert sheet.max_row == len(section.rows) + 1
    totals = workbook["Totals"]
    assert [c.value for c in totals[2]] == list(expected_totals(pocs).values())
    assert all(type(c.value) is int for c in totals[2])
    months = workbook["POCs per month"]
    got = {row[0].value: row[1].value for row in months.iter_rows(min_row=2)}
    assert got == {
        datetime.combine(m, datetime.min.time()): n for m, n in expected_months(pocs).items()
    }
    assert months["A2"].number_format == "yyyy-mm"
    with zipfile.ZipFile(tmp_path / f"{report_type}.xlsx") as archive:
        charts = [n for n in archive.namelist() if n.startswith("xl/charts/chart")]
    assert len(charts) == sum(1 for s in report.sections if s.chart and s.rows)
    if report_type == "detailed":
        rows = list(workbook["POCs"].iter_rows(min_row=2, values_only=True))
        assert len(rows) == len(pocs)
        assert all(type(r[6]) is datetime and type(r[7]) is int for r in rows)
        injected = [r for r in rows if r[1] == INJECTION_TITLE]
        assert len(injected) == 1  # stored as text, never as a formula
        cell = next(c for c in workbook["POCs"]["B"] if c.value == INJECTION_TITLE)
        assert cell.data_type == "s"


def test_sheet_names_are_valid_and_unique() -> None:
    names = sheet_names(["Report", "report", "a/b:c*d?e[f]g\\h", "x" * 40, "x" * 40, "'quoted'"])
    assert names[0] == "Report"
    assert names[1] == "report (2)"
    assert names[2] == "a b c d e f g h"
    assert names[3] == "x" * 31
    assert names[4] == "x" * 27 + " (2)"
    assert names[5] == "quoted"
    assert all(len(n) <= 31 for n in names)
    assert len({n.casefold() for n in names}) == len(names)


def csv_sections(path: Path) -> dict[str, list[list[str]]]:
    """``{section name: [header, *rows]}`` from a CSV report."""
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if len(row) == 1 and row[0].startswith("# "):
                current = sections.setdefault(row[0][2:], [])
            elif row:
                current.append(row)
    return sections


@pytest.mark.parametrize("report_type", REPORT_TYPES)
def test_csv_sections_parse_and_match(
    report_type: str, pocs: list[ReportPoc], tmp_path: Path
) -> None:
    report = build_report(request(report_type), pocs)
    sections = csv_sections(render(report, "csv", tmp_path))
    assert list(sections) == ["report", *(s.name for s in report.sections)]
    meta = dict(sections["report"][1:])
    assert meta["reportType"] == report_type
    assert meta["tenant"] == TENANT
    assert meta["startDate"] == "2024-01-01"
    assert meta["tags"] == "api"
    header, *rows = sections["totals"]
    assert dict(zip(header, map(int, rows[0]), strict=True)) == expected_totals(pocs)
    header, *rows = sections["pocsPerMonth"]
    assert header == ["month", "pocs"]
    assert {date.fromisoformat(m): int(n) for m, n in rows} == expected_months(pocs)
    if report_type == "detailed":
        header, *rows = sections["pocs"]
        assert len(rows) == len(pocs)
        titles = [r[header.index("title")] for r in rows]
        assert "'" + INJECTION_TITLE in titles
        assert INJECTION_TITLE not in titles
    if report_type == "analytics":
        header, *rows = sections["growth"]
        assert rows[1][2] == str(
            expected_months(pocs)[date(2024, 2, 1)] - expected_months(pocs)[date(2024, 1, 1)]
        )
        assert any(r[2].startswith("-") for r in rows)  # numbers are never escaped


@pytest.mark.parametrize("report_type", REPORT_TYPES)
def test_json_structure_and_numbers(
    report_type: str, pocs: list[ReportPoc], tmp_path: Path
) -> None:
    report = build_report(request(report_type), pocs)
    path = render(report, "json", tmp_path)
    data = json.loads(path.read_bytes().decode("utf-8"))
    meta = data["report"]
    assert meta["reportType"] == report_type
    assert meta["tenant"] == TENANT
    assert meta["dateRange"] == {"startDate": "2024-01-01", "endDate": "2024-12-31"}
    assert meta["filters"] == {"language": None, "tags": ["api"], "userId": None}
    assert datetime.fromisoformat(meta["generatedAt"]) == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    sections = data["sections"]
    assert list(sections) == [s.name for s in report.sections]
    assert sections["totals"] == [expected_totals(pocs)]
    months = {date.fromisoformat(r["month"]): r["pocs"] for r in sections["pocsPerMonth"]}
    assert months == expected_months(pocs)
    if report_type == "detailed":
        by_id = {p.poc_id: p for p in pocs}
        for row in sections["pocs"]:
            p = by_id[UUID(row["pocId"])]
            assert datetime.fromisoformat(row["createdAt"]) == p.created_at
            assert (row["title"], row["views"], row["tags"]) == (
                p.title,
                p.views,
                ", ".join(p.tags),
            )
    assert "日本語" in path.read_text(encoding="utf-8")  # a top tag, in UTF-8, not \\u escapes


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("report_type", REPORT_TYPES)
def test_no_pocs_still_renders_a_valid_file(report_type: str, fmt: str, tmp_path: Path) -> None:
    report = build_report(request(report_type), [])
    path = render(report, fmt, tmp_path)
    zeros = {date(2024, m, 1): 0 for m in range(1, 13)}
    if fmt == "pdf":
        pages = pdf_text(path)
        assert TENANT in pages[0]
        assert "No POCs in this period." in "\n".join(pages)
    elif fmt == "xlsx":
        workbook = openpyxl.load_workbook(path)
        assert [c.value for c in workbook["Totals"][2]] == [0] * 6
        assert workbook["POCs per month"].max_row == 13
    elif fmt == "csv":
        sections = csv_sections(path)
        assert {date.fromisoformat(m): int(n) for m, n in sections["pocsPerMonth"][1:]} == zeros
        assert sections["topTags"] == [["rank", "tag", "pocs", "sharePct"]]
    else:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["sections"]["totals"][0]["pocs"] == 0
        assert [r["pocs"] for r in data["sections"]["pocsPerMonth"]] == list(zeros.values())


@pytest.mark.parametrize("fmt", FORMATS)
def test_writers_accept_a_stream_and_leave_it_open(fmt: str, pocs: list[ReportPoc]) -> None:
    out = io.BytesIO()
    RENDERERS[fmt](build_report(request("summary"), pocs[:10]), out)
    assert not out.closed
    assert len(out.getvalue()) > 0


def test_formula_injection_is_neutralized() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert neutralize(text) == "'" + text
    for text in ("plain", "1-1", "a=b", ""):
        assert neutralize(text) == text


def test_csv_escapes_formulas_in_parameters_too(tmp_path: Path) -> None:
    report = build_report(request(tenant_name='=HYPERLINK("x")', requested_by="@me"), [])
    meta = dict(csv_sections(render(report, "csv", tmp_path))["report"][1:])
    assert meta["tenant"] == '\'=HYPERLINK("x")'
    assert meta["requestedBy"] == "'@me"


def test_one_poc_per_month_everywhere(tmp_path: Path) -> None:
    each_month = [
        poc(m, language=LANGUAGES[m % 3], created=datetime(2024, m, 2, tzinfo=UTC))
        for m in range(1, 13)
    ]
    report = build_report(request("analytics"), each_month)
    data = json.loads(render(report, "json", tmp_path).read_text(encoding="utf-8"))
    assert [r["pocs"] for r in data["sections"]["pocsPerMonth"]] == [1] * 12
    assert [r["growthPct"] for r in data["sections"]["growth"]] == [None] + [0.0] * 11
    counts: dict[str, int] = defaultdict(int)
    for p in each_month:
        counts[p.language] += 1
    assert (
        Counter({r["language"]: r["pocs"] for r in data["sections"]["pocsPerLanguage"]}) == counts
    )
