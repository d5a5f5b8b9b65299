"""Every route that takes a token, against every kind of bad token.

A token an attacker can make (expired, signed with another key or none, its claims edited, a
token of another kind) is ``invalid_token`` or ``token_expired``; a genuine token whose login
session has ended (logout, a reused refresh token, a password change made in another login,
a deactivation) is ``session_revoked``, and so is one the server's own key signed but whose
tenant or user is not its session's: the database, not the token, says who is calling.
"""

from __future__ import annotations

from tests.helpers import register
from tests.security.catalog import ROUTES
from tests.security.probe import Probe
from tests.security.tokens import WRONG_SECRET, claims_of, expired, signed, tampered, unsigned
from tests.security.world import ENDINGS, Outcome, Rows, World, end_login, no

INVALID = no(401, "invalid_token")
EXPIRED = no(401, "token_expired")
REVOKED = no(401, "session_revoked")


async def ended_logins(world: World) -> dict[str, str]:
    """Genuine access tokens of login sessions that have ended, one for each way."""
    a = world.a
    tokens = {}
    for how in ENDINGS:
        account = await register(a.client, a.admin)
        await end_login(a.client, a.admin, account, how)
        tokens[how] = account.token
    return tokens


async def bad_tokens(world: World) -> dict[str, tuple[str, Outcome]]:
    a, b = world.a, world.b
    token = a.owner.token
    claims = claims_of(token)
    without_kind = {k: v for k, v in claims.items() if k != "typ"}
    forged: dict[str, tuple[str, Outcome]] = {
        "an expired token": (expired(token), EXPIRED),
        "a token signed with another key": (signed(claims, WRONG_SECRET), INVALID),
        "an unsigned token (alg none)": (unsigned(claims), INVALID),
        "a token signed HS384 with the key": (signed(claims, alg="HS384"), INVALID),
        "a viewer's token, its role edited to admin": (
            tampered(a.viewer.token, role="admin"),
            INVALID,
        ),
        "a token, its tenant edited to another": (tampered(token, tid=b.tenant_id), INVALID),
        "a token, its user edited to the admin's": (tampered(token, sub=a.admin.user_id), INVALID),
        "another tenant's token, its tenant edited": (
            tampered(b.admin.token, tid=a.tenant_id),
            INVALID,
        ),
        "a token of another issuer": (signed({**claims, "iss": "elsewhere"}), INVALID),
        "a token of no kind": (signed(without_kind), INVALID),
        "a participant token": (a.dojo.host_token, INVALID),
        "a refresh token": (a.owner.refresh_token, INVALID),
        "a token the key signed naming another tenant": (
            signed({**claims, "tid": b.tenant_id}),
            REVOKED,
        ),
        "a token the key signed naming another user": (
            signed({**claims, "sub": a.admin.user_id}),
            REVOKED,
        ),
    }
    ended = {
        f"a genuine token whose login ended by {how}": (token, REVOKED)
        for how, token in (await ended_logins(world)).items()
    }
    return forged | ended


async def test_every_route_refuses_every_bad_token(world: World, rows: Rows) -> None:
    tokens = await bad_tokens(world)
    probe = Probe(world, rows)
    for route in ROUTES:
        call = await route.call(world.a, world.a.owner)
        for kind, (token, expect) in tokens.items():
            label = f"{route.method} {route.path} with {kind}"
            headers = {"Authorization": f"Bearer {token}"}
            await probe.send(label, route.method, call, headers, expect)
    probe.verdict()


async def test_a_role_the_server_signed_is_not_believed(world: World, rows: Rows) -> None:
    # Defense in depth: should the server's key sign a role the database does not hold, the
    # caller still gets what a viewer gets.
    claims = claims_of(world.a.viewer.token)
    headers = {"Authorization": f"Bearer {signed({**claims, 'role': 'admin'})}"}
    probe = Probe(world, rows)
    for route in ROUTES:
        call = await route.call(world.a, world.a.viewer)
        label = f"{route.method} {route.path} as a viewer whose token says admin"
        await probe.send(label, route.method, call, headers, route.roles["viewer"])
    probe.verdict()
