"""Reports and the yearly video in Chromium: request, progress, download, preview."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web.browser import assert_accessible, screenshot
from tests.web.conftest import Site

pytestmark = pytest.mark.timeout(240)
JOB_TIMEOUT_MS = 120_000


def test_request_a_report_and_a_yearly_video(site: Site, shots: Path) -> None:
    admin = site.tenant()
    site.poc(admin, "Bloom filter", "Go")
    page = site.signed_in(admin, "/reports")
    expect(page.get_by_role("heading", name="Reports and videos")).to_be_visible()
    assert_accessible(page, "reports")

    page.get_by_label("Format").select_option("csv")
    page.get_by_role("button", name="Request report").click()
    expect(page.get_by_role("progressbar").first).to_be_visible()
    download = page.get_by_role("link", name=re.compile(r"^Download summary report \(csv\)"))
    expect(download).to_be_visible(timeout=JOB_TIMEOUT_MS)
    with page.expect_download() as info:
        download.click()
    saved = info.value.path()
    report = Path(saved).read_text()
    assert "Summary report" in report
    assert "Go,1," in report  # the one POC, by language

    page.get_by_role("button", name="Request video").click()
    preview = page.get_by_label(re.compile(r"^Preview of the \d{4} video"))
    expect(preview).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(page.get_by_role("link", name=re.compile(r"^Download \d{4} video"))).to_be_visible()
    # The browser can play what the server made (it reads its length from the MP4).
    page.wait_for_function(
        "() => { const v = document.querySelector('video'); return v && v.duration > 0 }",
        timeout=30_000,
    )
    assert_accessible(page, "reports, done")
    screenshot(page, shots, "reports")


def test_the_dojo_list_and_join_form(site: Site, shots: Path) -> None:
    host = site.tenant()
    poc_id = site.poc(host, "Game of life")
    site.rest(
        "POST",
        "/v1/dojos/sessions",
        {"title": "Life kata", "pocId": poc_id, "initialCode": "x = 1"},
        host["token"],
    )
    page = site.signed_in(host, "/dojos")
    expect(page.get_by_role("link", name="Life kata")).to_be_visible()
    assert_accessible(page, "dojos")
    page.get_by_label("Join link or session id").fill("not a link")
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_role("alert")).to_contain_text("Paste a join link")
    screenshot(page, shots, "dojos")
