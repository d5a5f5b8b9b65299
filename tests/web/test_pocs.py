"""The POC screens in Chromium: sign up, create, find with a typo, favorite; axe on each."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.helpers import PASSWORD, unique
from tests.web.browser import assert_accessible, screenshot
from tests.web.conftest import Site

pytestmark = pytest.mark.timeout(180)


def test_sign_up_create_find_with_a_typo_and_favorite(site: Site, shots: Path) -> None:
    page = site.page()
    page.goto(f"{site.url}/")
    expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    assert_accessible(page, "log in")
    screenshot(page, shots, "login")

    page.get_by_role("link", name="Sign up your company").click()
    expect(page.get_by_role("heading", name="Sign up your company")).to_be_visible()
    assert_accessible(page, "sign up")
    domain = f"{unique('s')}.example"
    page.get_by_label("Company name").fill("Analytical Engines")
    page.get_by_label("Domain").fill(domain)
    page.get_by_label("Contact email").fill(f"ops@{domain}")
    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Email", exact=True).fill(f"ada@{domain}")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="POCs", level=1)).to_be_visible()

    page.get_by_role("link", name="New POC").first.click()
    expect(page.get_by_role("heading", name="New POC")).to_be_visible()
    assert_accessible(page, "new POC")
    page.get_by_label("Title").fill("Streaming tokenizer")
    page.get_by_label("Description").fill("Splits <b>text</b> into tokens as it arrives.")
    page.get_by_label("Language").select_option("Rust")
    page.get_by_label("Tags").fill("parsing, streams")
    page.get_by_role("button", name="Create POC").click()
    expect(page.get_by_role("heading", name="Streaming tokenizer", level=1)).to_be_visible()
    # Markup typed by a user is shown as text, never parsed.
    expect(page.get_by_text("Splits <b>text</b> into tokens as it arrives.")).to_be_visible()
    assert page.locator("article b").count() == 0
    assert_accessible(page, "POC detail")
    screenshot(page, shots, "poc-detail")

    page.get_by_role("link", name="POCs", exact=True).click()
    page.get_by_label("Name").fill("parser")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("status").filter(has_text="0 POCs found")).to_be_visible()
    page.get_by_label("Name").fill("tokeniser")  # one letter wrong
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"name=tokeniser"))
    expect(page.get_by_role("status").filter(has_text="1 POC found")).to_be_visible()
    result = page.get_by_role("link", name="Streaming tokenizer")
    expect(result).to_be_visible()
    expect(page.get_by_role("button", name="Rust (1)")).to_be_visible()
    expect(page.get_by_role("button", name="parsing (1)")).to_be_visible()
    assert_accessible(page, "search")
    screenshot(page, shots, "search")

    page.get_by_role("button", name="Favorite Streaming tokenizer").click()
    expect(page.get_by_role("button", name="Unfavorite Streaming tokenizer")).to_be_visible()
    page.get_by_role("link", name="Favorites").click()
    expect(page.get_by_role("heading", name="Favorites")).to_be_visible()
    expect(page.get_by_role("link", name="Streaming tokenizer")).to_be_visible()
    assert_accessible(page, "favorites")
    screenshot(page, shots, "favorites")


def test_edit_and_delete_a_poc(site: Site) -> None:
    admin = site.tenant()
    page, poc_id = site.on_new_poc(admin, "Ring buffer")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit Ring buffer")).to_be_visible()
    assert_accessible(page, "edit POC")
    page.get_by_label("Title").fill("Lock-free ring buffer")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="Lock-free ring buffer", level=1)).to_be_visible()
    confirm = page.get_by_role("button", name="Yes, delete Lock-free ring buffer")
    expect(confirm).to_be_hidden()  # deleting takes two clicks
    page.get_by_role("button", name="Delete", exact=True).click()
    confirm.click()
    expect(page.get_by_role("heading", name="POCs", level=1)).to_be_visible()
    page.goto(f"{site.url}/pocs/{poc_id}")
    expect(page.get_by_role("heading", name="POC not found")).to_be_visible()


def test_logout_clears_everything(site: Site) -> None:
    admin = site.tenant()
    page = site.signed_in(admin)
    assert page.evaluate("() => Object.keys(localStorage).length") == 0
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    assert page.evaluate("() => sessionStorage.length + localStorage.length") == 0
    page.reload()
    expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    page.goto(f"{site.url}/favorites")
    expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()


def test_the_access_token_is_refreshed_before_it_expires(site: Site) -> None:
    admin = site.tenant()
    page = site.page()
    page.clock.install()
    site.log_in(page, admin)
    kept = page.evaluate("() => sessionStorage.getItem('pocdojo.session')")
    page.clock.fast_forward("14:30")  # of the access token's 15 minutes
    with page.expect_request(lambda request: request.url.endswith("/v1/auth/refresh")):
        page.get_by_role("link", name="Favorites").click()
    expect(page.get_by_role("heading", name="Favorites")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('pocdojo.session')") != kept
    # No access token (a JWT, "eyJ…") is stored: it lives in the app's memory only.
    stored = page.evaluate("() => JSON.stringify({ ...sessionStorage, ...localStorage })")
    assert "eyJ" not in stored


def test_search_pages_and_sorts(site: Site, shots: Path) -> None:
    admin = site.tenant()
    for i in range(12):
        site.poc(admin, f"Kata number {i:02d}", "Go" if i % 3 else "Python")
    page = site.signed_in(admin)
    page.get_by_label("Sort by").select_option("title")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("status").filter(has_text="12 POCs found")).to_be_visible()
    expect(page.get_by_text("Page 1 of 2")).to_be_visible()
    expect(page).to_have_url(re.compile(r"sort=title"))
    expect(page.locator(".cards h2")).to_have_text([f"Kata number {i:02d}" for i in range(10)])
    page.get_by_role("button", name="Next page").click()
    expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    expect(page.get_by_role("link", name="Kata number 11")).to_be_visible()
    # A facet narrows the search, and counts stay those of the same filters.
    page.get_by_role("button", name="Python (4)").click()
    expect(page.get_by_role("status").filter(has_text="4 POCs found")).to_be_visible()
    expect(page.get_by_label("Language")).to_have_value("Python")
    page.go_back()
    expect(page.get_by_text("Page 2 of 2")).to_be_visible()


def test_the_keyboard_alone_logs_in_and_leaves_the_editor(site: Site) -> None:
    admin = site.tenant()
    page = site.page()
    page.goto(f"{site.url}/login")
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    for _ in range(10):
        if page.evaluate("() => document.activeElement.name") == "tenant":
            break
        page.keyboard.press("Tab")
    page.keyboard.type(admin["domain"])
    page.keyboard.press("Tab")
    page.keyboard.type(admin["username"])
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="POCs", level=1)).to_be_visible()
