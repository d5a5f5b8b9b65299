"""ICE servers for a dojo's voice: STUN URLs as configured, and TURN URLs with short-lived
credentials by the TURN REST API convention (draft-uberti-behave-turn-rest), which coturn
checks with ``use-auth-secret``: the username is ``<expiry>:<user id>`` and the credential
the base64 HMAC-SHA1 of the username under the secret the TURN server shares. Nothing is
stored; the TURN server refuses the credential once the expiry passes or if it was altered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from uuid import UUID

from pocdojo.core.settings import Settings


def turn_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def ice_servers(settings: Settings, user_id: UUID, *, now: float | None = None) -> dict[str, Any]:
    """``{"iceServers": [...], "ttlSeconds"}`` for ``user_id``, in the shape
    ``RTCPeerConnection`` takes (``RTCConfiguration.iceServers``)."""
    servers: list[dict[str, Any]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret is not None:
        expiry = int(now if now is not None else time.time()) + settings.turn_ttl
        username = f"{expiry}:{user_id}"
        credential = turn_credential(settings.turn_secret.get_secret_value(), username)
        servers.append(
            {"urls": list(settings.turn_urls), "username": username, "credential": credential}
        )
    return {"iceServers": servers, "ttlSeconds": settings.turn_ttl}
