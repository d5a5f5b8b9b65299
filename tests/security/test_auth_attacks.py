"""Login, refresh and logout (which take no token) named with the other tenant's credentials.

Each is refused with its code, names nothing it was not given, and ends no session: the other
tenant's tokens keep working (the rows of its sessions and refresh tokens are unchanged). A
refresh token spent and used again, and sessions that ended, are in ``test_tokens``.
"""

from __future__ import annotations

from tests.helpers import PASSWORD
from tests.security.catalog import Call
from tests.security.probe import Probe
from tests.security.tokens import WRONG_SECRET, claims_of, expired, signed, unsigned
from tests.security.world import Rows, World, no

INVALID = no(401, "invalid_token")
BAD_LOGIN = no(401, "invalid_credentials")


async def test_credentials_of_one_tenant_open_nothing_in_the_other(
    world: World, rows: Rows
) -> None:
    a, b = world.a, world.b
    theirs = claims_of(b.admin.token)

    def login(username: str, tenant: str) -> Call:
        return Call(
            "/v1/auth/login", {"username": username, "password": PASSWORD, "tenantId": tenant}
        )

    def refresh(token: str, user_id: str) -> Call:
        return Call("/v1/auth/refresh", {"refreshToken": token, "userId": user_id})

    def logout(token: str, user_id: str) -> Call:
        return Call("/v1/auth/logout", {"token": token, "userId": user_id})

    logins = {
        "their user, naming our tenant": login(b.admin.username, a.tenant_id),
        "our user, naming their tenant by id": login(a.owner.username, b.tenant_id),
        "our user, naming their tenant by domain": login(a.owner.username, b.admin.domain),
    }
    others = {
        "refresh: their refresh token for our user": (
            refresh(b.admin.refresh_token, a.owner.user_id)
        ),
        "refresh: our refresh token for their user": (
            refresh(a.owner.refresh_token, b.admin.user_id)
        ),
        "logout: their access token, our user": logout(b.admin.token, a.owner.user_id),
        "logout: their expired access token, our user": logout(
            expired(b.admin.token), a.owner.user_id
        ),
        "logout: their refresh token, our user": logout(b.admin.refresh_token, a.owner.user_id),
        "logout: their claims signed with another key": logout(
            signed(theirs, WRONG_SECRET), b.admin.user_id
        ),
        "logout: their claims, alg none": logout(unsigned(theirs), b.admin.user_id),
        "logout: their session named under our tenant, signed": logout(
            signed({**theirs, "tid": a.tenant_id}), b.admin.user_id
        ),
    }
    probe = Probe(world, rows)
    for label, call in logins.items():
        # A failed login is audited in the tenant it named; nothing else is written.
        await probe.send(f"login: {label}", "POST", call, {}, BAD_LOGIN, audited=True)
    for label, call in others.items():
        await probe.send(label, "POST", call, {}, INVALID)
    probe.verdict()
