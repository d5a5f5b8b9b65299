"""Sending one attack and judging its answer: the status and error code, what the answer
names, and what the database holds after it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.security.catalog import Call
from tests.security.world import Outcome, Rows, World, asked, changes, refusal_of


@dataclass
class Probe:
    """Sends requests into ``world`` and keeps a line for every answer that is wrong."""

    world: World
    rows: Rows
    wrong: list[str] = field(default_factory=list)

    def verdict(self) -> None:
        """Fail with every wrong answer, one a line."""
        assert not self.wrong, "\n".join(["", *self.wrong])

    async def send(
        self,
        label: str,
        method: str,
        call: Call,
        headers: dict[str, str],
        expect: Outcome,
        *,
        audited: bool = False,
    ) -> None:
        """One request, judged: a refusal must come with its status and error code, name
        nothing of either tenant it was not asked about, and change no row; a success must
        name nothing of tenant ``b`` and no secret it was not asked about, and change no row of
        ``b``. An ``audited`` refusal may add rows to the audit log, and only there."""
        a, b = self.world.a, self.world.b
        watched = [a.tenant_id, b.tenant_id] if expect.refused else [b.tenant_id]
        before = await self.rows.of(watched)
        kwargs: dict[str, Any] = {"headers": headers}
        if call.params:
            kwargs["params"] = call.params
        if call.body is not None:
            kwargs["json"] = call.body
        resp = await a.client.request(method, call.path, **kwargs)
        text = await resp.text()
        got = str(resp.status)
        if resp.status >= 400:
            got += " " + await refusal_of(resp)
        if got != str(expect):
            self.wrong.append(f"{label}: got {got}, expected {expect}: {text[:200]}")
        said = asked(call.path, call.params, call.body)
        if expect.shows_join_code:  # those in a dojo see its code, to invite others
            said += a.dojo.join_code
        for side in (a, b):
            # A success may name what its own tenant holds, but nobody's secrets.
            mine = side is a and not expect.refused
            if leaked := side.leaks(text, said, secrets_only=mine):
                self.wrong.append(f"{label}: the answer names {leaked}")
        after = await self.rows.of(watched)
        if audited and before.get("audit_log", set()) <= after.get("audit_log", set()):
            after["audit_log"] = before.get("audit_log", set())
        if changed := changes(before, after):
            self.wrong.append(f"{label}: rows changed: {changed}")
