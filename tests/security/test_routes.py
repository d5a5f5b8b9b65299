"""Every REST route against every caller of its tenant and of the other tenant.

The routes and what each caller gets are in ``catalog.py``; a route the router has and the
catalog lacks fails ``test_every_route_is_in_the_catalog``. Each request is judged by
``Probe.send``: the exact status and error code, nothing of the other tenant in the answer
(nothing of either in a refusal), and no row changed by a refusal.
"""

from __future__ import annotations

from aiohttp import web

from pocdojo.app import create_app
from pocdojo.core import appkeys
from pocdojo.core.settings import Settings
from tests.rest.test_openapi import routed
from tests.security.catalog import PUBLIC, ROUTES, Call
from tests.security.probe import Probe
from tests.security.world import Rows, World, no


def listed() -> set[tuple[str, str]]:
    """(method, path) of every route in the catalog, as ``routed`` names them."""
    return {(method.lower(), path) for method, path in [*(r.key for r in ROUTES), *PUBLIC]}


def test_every_route_is_in_the_catalog(settings: Settings) -> None:
    app = create_app(settings)
    assert len(ROUTES) + len(PUBLIC) == len(listed()), "a route is listed twice"
    assert sorted(routed(app) - listed()) == [], "routes the catalog lacks"
    assert sorted(listed() - routed(app)) == [], "listed routes that are gone"
    # The catalog's split agrees with what the OpenAPI document says needs a token.
    doc = app[appkeys.openapi_key]
    secured = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if "security" in operation
    }
    assert secured == {r.key for r in ROUTES}


def test_a_route_missing_from_the_catalog_would_be_noticed(settings: Settings) -> None:
    app = create_app(settings)

    async def hidden(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_route("DELETE", "/v1/hidden/{thing}", hidden)
    assert routed(app) - listed() == {("delete", "/v1/hidden/{thing}")}


async def test_every_caller_gets_what_its_role_allows_on_every_route(
    world: World, rows: Rows
) -> None:
    probe = Probe(world, rows)
    for route in ROUTES:
        for name, expect in route.roles.items():
            caller = world.a.caller(name)
            call = await route.call(world.a, caller)
            label = f"{route.method} {route.path} as {name}"
            await probe.send(label, route.method, call, caller.auth, expect)
    probe.verdict()


async def test_another_tenants_things_are_out_of_reach_on_every_route(
    world: World, rows: Rows
) -> None:
    probe = Probe(world, rows)
    for route in ROUTES:
        attacks = [("", route.call, route.cross)]
        attacks += [(f" ({a.label})", a.call, a.cross) for a in route.attacks]
        for label, build, outcomes in attacks:
            for name, expect in outcomes.items():
                caller = world.a.caller(name)
                call = await build(world.b, caller)
                where = f"{route.method} {route.path}{label} as {name} of the other tenant"
                await probe.send(where, route.method, call, caller.auth, expect)
    probe.verdict()


async def test_what_answers_without_a_token_names_no_tenant(world: World, rows: Rows) -> None:
    probe = Probe(world, rows)
    for path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json", "/v1/languages"):
        # A refusal names nothing of either tenant; these are the same check on a success.
        for side in (world.a, world.b):
            resp = await side.client.get(path)
            assert resp.status == 200, path
            assert side.leaks(await resp.text(), "") == [], path
    # A signup with a domain taken by another tenant: refused, and that tenant untouched.
    body = {
        "name": "Squatter",
        "domain": world.b.admin.domain.upper(),
        "contactEmail": "ops@squat.example",
        "plan": "standard",
        "admin": {
            "username": "squatter",
            "email": "squatter@squat.example",
            "fullName": "Squatter",
            "password": world.b.admin.password,
        },
    }
    await probe.send(
        "POST /v1/tenants", "POST", Call("/v1/tenants", body), {}, no(409, "domain_taken")
    )
    probe.verdict()
