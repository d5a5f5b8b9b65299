"""A live ``pocdojo serve`` and a headless Chromium for the browser tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import TEST_JWT_SECRET, Engines
from tests.helpers import PASSWORD, signup_body, unique
from tests.servers import Server, call, cli_env, serving
from tests.web.browser import chromium_path


def serve_env(engines: Engines) -> dict[str, str]:
    """The environment of a ``pocdojo serve`` on the suite's engines, with a job worker."""
    variables = {
        "DATABASE_URL": engines.database_url,
        "REDIS_URL": engines.redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "JOB_QUEUE": f"web-jobs:{uuid.uuid4().hex}",
        "LOG_LEVEL": "WARNING",
    }
    if engines.database_app_url:
        variables["DATABASE_APP_URL"] = engines.database_app_url
    return cli_env(**variables)


@pytest.fixture(scope="session")
def live(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``pocdojo serve`` on the suite's engines, for the whole session."""
    root = tmp_path_factory.mktemp("web-server")
    with serving(root / "data", serve_env(engines), root / "logs") as server:
        server.wait_until_healthy()
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium from the system, shared by one module's tests.

    Playwright's sync API keeps an event loop running while it is open, so it is closed at
    the end of each module, before any asyncio test elsewhere needs the loop.
    """
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this run's screenshots go."""
    return tmp_path_factory.getbasetemp() / "screens"


@dataclass
class Site:
    """The live server as a browser sees it, and a way to make tenants and users over REST."""

    server: Server
    browser: Browser
    problems: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def rest(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        status, answer = call(self.server.port, method, path, body, token)
        assert 200 <= status < 300, f"{method} {path}: {status} {answer}"
        return answer

    def tenant(self) -> dict[str, str]:
        """A new tenant and its admin, logged in: domain, username, userId, token."""
        domain = f"{unique('w')}.example"
        username = unique("ada")
        self.rest("POST", "/v1/tenants", signup_body(domain, username, "Web Labs"))
        return {"domain": domain, **self.login(domain, username)}

    def login(self, domain: str, username: str) -> dict[str, str]:
        answer = self.rest(
            "POST",
            "/v1/auth/login",
            {"username": username, "password": PASSWORD, "tenantId": domain},
        )
        return {
            "domain": domain,
            "username": username,
            "userId": answer["userId"],
            "tenantId": answer["tenantId"],
            "token": answer["token"],
        }

    def user(self, admin: dict[str, str], role: str = "user") -> dict[str, str]:
        """Another user of ``admin``'s tenant, logged in over REST."""
        username = unique("grace")
        self.rest(
            "POST",
            "/v1/users/register",
            {
                "username": username,
                "password": PASSWORD,
                "email": f"{username}@{admin['domain']}",
                "fullName": "Grace Hopper",
                "tenantId": admin["tenantId"],
                "role": role,
            },
            admin["token"],
        )
        return self.login(admin["domain"], username)

    def poc(self, owner: dict[str, str], title: str, language: str = "Python") -> str:
        answer = self.rest(
            "POST",
            "/v1/pocs",
            {
                "title": title,
                "description": "A proof of concept written for the browser tests.",
                "language": language,
                "tags": ["kata", "web"],
                "userId": owner["userId"],
                "tenantId": owner["tenantId"],
            },
            owner["token"],
        )
        poc_id: str = answer["pocId"]
        return poc_id

    def on_new_poc(self, owner: dict[str, str], title: str) -> tuple[Page, str]:
        """A new POC of ``owner``'s, and a page signed in as them showing it."""
        poc_id = self.poc(owner, title)
        page = self.signed_in(owner, f"/pocs/{poc_id}")
        expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
        return page, poc_id

    def page(self) -> Page:
        """A page in a fresh browser context (its own storage: another person)."""
        context: BrowserContext = self.browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        page.on("console", lambda message: self._console(message.type, message.text))
        return page

    def _console(self, kind: str, text: str) -> None:
        """Note what the Content-Security-Policy refused. Remote cursors carry their colours
        in style attributes the policy does not apply (the room re-applies them through the
        CSSOM), so only those are expected."""
        refused = kind == "error" and "Content Security Policy" in text
        if refused and "inline style" not in text:
            self.problems.append(text)

    def signed_in(self, account: dict[str, str], path: str = "/pocs") -> Page:
        """A new page, logged in as ``account`` through the login screen, showing ``path``."""
        page = self.page()
        self.log_in(page, account)
        if path != "/pocs":
            page.goto(f"{self.url}{path}")
        return page

    def log_in(self, page: Page, account: dict[str, str]) -> None:
        """Log in as ``account`` through the login screen, which then shows the POCs."""
        page.goto(f"{self.url}/login")
        page.get_by_label("Company domain").fill(account["domain"])
        page.get_by_label("Username").fill(account["username"])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="POCs", level=1).wait_for()


@pytest.fixture
def site(live: Server, browser: Browser) -> Iterator[Site]:
    made = Site(live, browser)
    yield made
    for context in browser.contexts:
        context.close()
    assert made.problems == [], "the pages met errors or policy refusals"
