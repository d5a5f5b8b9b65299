"""Declared operations: one decorator gives a handler its route, its validated input, its
authentication and its OpenAPI description, so the document cannot drift from the code.

A handler is ``async def f(ctx: Ctx, body: Model = ..., query: Model = ...)`` and returns a
pydantic model (serialized with the declared status) or an aiohttp response. A body declared
``Model | None`` may be left out; the handler then gets ``None``.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from pocdojo.core import appkeys
from pocdojo.core.db import sessions as sessions_db
from pocdojo.core.db import tenant_tx
from pocdojo.core.db.audit import Actor
from pocdojo.core.db.sessions import Principal
from pocdojo.core.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    Unauthorized,
    UnsupportedMedia,
    ValidationFailed,
)

Handler = Callable[..., Awaitable[Any]]
RawHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

request_id_key = web.RequestKey("request_id", str)


class ApiModel(BaseModel):
    """Base of every request and response body: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Paged(ApiModel):
    """The paging fields of every list answer; ``paging`` fills them."""

    total_count: int
    page: int
    limit: int
    total_pages: int


def paging(page: int, limit: int, total: int) -> dict[str, int]:
    """The ``Paged`` fields for page ``page`` of ``limit`` items out of ``total``."""
    return {
        "total_count": total,
        "page": page,
        "limit": limit,
        "total_pages": math.ceil(total / limit),
    }


class ErrorBody(ApiModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(ApiModel):
    """Every failure answers with this shape."""

    error: ErrorBody


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    auth: bool
    roles: tuple[str, ...]
    errors: tuple[int, ...]
    media_type: str
    websocket: bool = False
    other_responses: tuple[tuple[int, type[BaseModel]], ...] = ()
    body_required: bool = True
    path_types: tuple[tuple[str, Any], ...] = ()


@dataclass
class Routes:
    """The operations of one module, added to the application with ``install``."""

    tag: str
    operations: list[Operation] = field(default_factory=list)

    def op(
        self,
        method: str,
        path: str,
        *,
        response: type[BaseModel] | None = None,
        status: int = 200,
        auth: bool = True,
        roles: tuple[str, ...] = (),
        errors: tuple[int, ...] = (),
        media_type: str = "application/json",
        other_responses: tuple[tuple[int, type[BaseModel]], ...] = (),
        path_types: dict[str, Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare one operation; body and query models are read from the signature.

        ``path_types`` gives, for the document, the type the handler checks a path parameter
        against; "{name:uuid}" in the path is a UUID, and any other parameter a string.
        """

        def register(handler: Handler) -> Handler:
            hints = inspect.get_annotations(handler, eval_str=True)
            body, body_required = _body_model(hints.get("body"))
            query = hints.get("query")
            self.operations.append(
                Operation(
                    method=method,
                    path=path,
                    handler=handler,
                    summary=(inspect.getdoc(handler) or handler.__name__).splitlines()[0],
                    tag=self.tag,
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    auth=auth,
                    roles=roles,
                    errors=errors,
                    media_type=media_type,
                    other_responses=other_responses,
                    body_required=body_required,
                    path_types=tuple((path_types or {}).items()),
                )
            )
            return handler

        return register

    def socket(self, path: str) -> Callable[[RawHandler], RawHandler]:
        """Declare a WebSocket endpoint, installed as is and documented with its 101 and the
        statuses a plain GET is refused with (those its close codes stand for)."""

        def register(handler: RawHandler) -> RawHandler:
            self.operations.append(
                Operation(
                    method="GET",
                    path=path,
                    handler=handler,
                    summary=(inspect.getdoc(handler) or handler.__name__).splitlines()[0],
                    tag=self.tag,
                    body=None,
                    query=None,
                    response=None,
                    status=101,
                    auth=False,
                    roles=(),
                    errors=tuple(_SOCKET_REFUSALS),
                    media_type="application/octet-stream",
                    websocket=True,
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        """Add every operation to ``app``'s router."""
        for operation in self.operations:
            handler = operation.handler if operation.websocket else _endpoint(operation)
            # A socket takes any id, to close a malformed one with 4404 once upgraded: a stock
            # client stops there, while a refused handshake has it retry forever.
            segment = "}" if operation.websocket else f":{_UUID_SEGMENT}}}"
            app.router.add_route(
                operation.method, operation.path.replace(":uuid}", segment), handler
            )


# A path parameter written "{name:uuid}" matches hex digits and hyphens only, so a literal path
# beside an id route (/v1/users/me beside /v1/users/{userId:uuid}) is not also matched by the id
# route: it is not handed to the id's handler, and its 405 lists its own methods only.
_UUID_SEGMENT = "[0-9A-Fa-f-]+"


def _body_model(hint: Any) -> tuple[type[BaseModel] | None, bool]:
    """The body model a handler's ``body`` annotation names, and whether a body is required
    (it is not for ``Model | None``)."""
    if hint is None:
        return None, False
    args = typing.get_args(hint)
    models = [arg for arg in args if arg is not type(None)]
    if len(models) == 1 and len(args) == 2:
        return models[0], False
    return hint, True


class Ctx:
    """What a handler sees: the request, the caller, an open tenant transaction, the engines."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.app = request.app
        self.settings = request.app[appkeys.settings_key]
        self._principal: Principal | None = None
        self._conn: Any = None
        self._after_commit: list[Callable[[], Awaitable[None]]] = []

    @property
    def principal(self) -> Principal:
        """The authenticated caller (only on ``auth=True`` operations)."""
        if self._principal is None:
            raise Unauthorized("authentication required", code="missing_token")
        return self._principal

    @property
    def conn(self) -> Any:
        """The request's connection, inside a transaction scoped to the caller's tenant."""
        if self._conn is None:
            raise RuntimeError("no tenant transaction on an anonymous operation")
        return self._conn

    def after_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` once the request's transaction has committed (e.g. drop a cache
        entry, which done earlier could be refilled with the old row before the commit)."""
        self._after_commit.append(action)

    def access_changed(self, tenant_id: UUID, user_id: UUID) -> None:
        """Once committed, hold the user's open dojo sockets, on every node, to their access
        now (the README promises that a logout or deactivation takes effect at once)."""
        rooms = self.app[appkeys.live_rooms_key]
        self.after_commit(lambda: rooms.access_changed(tenant_id, user_id))

    @property
    def request_id(self) -> str:
        return str(self.request.get(request_id_key, "-"))

    @property
    def client_ip(self) -> str | None:
        """The caller's address. Behind a trusted proxy, the last X-Forwarded-For entry: the
        address the proxy itself saw (earlier entries are whatever the client sent)."""
        if self.settings.trust_forwarded_for:
            forwarded = self.request.headers.get("X-Forwarded-For", "")
            last = forwarded.rsplit(",", 1)[-1].strip()
            if last:
                return last[:45]
        return self.request.remote

    def actor(self, tenant_id: Any = None, user_id: Any = None) -> Actor:
        """The audit actor: the caller by default, or the given tenant and user."""
        if self._principal is not None:
            tenant_id = tenant_id or self._principal.tenant_id
            user_id = user_id or self._principal.user_id
        return Actor(
            tenant_id=tenant_id,
            user_id=user_id,
            request_id=self.request_id,
            ip_address=self.client_ip,
            user_agent=self.request.headers.get("User-Agent"),
        )

    def path_id(self, name: str, what: str) -> UUID:
        """A UUID path parameter; anything else cannot name a row, so it is a 404."""
        try:
            return UUID(self.request.match_info[name])
        except ValueError as exc:
            raise NotFound(f"{what} not found") from exc

    def require_tenant(self, tenant_id: Any) -> None:
        """Refuse a body ``tenantId`` that is not the caller's tenant."""
        if tenant_id is not None and tenant_id != self.principal.tenant_id:
            raise Forbidden("tenantId does not match the token", code="tenant_mismatch")


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "body",
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]


async def _read_body(
    request: web.Request, model: type[BaseModel], *, required: bool
) -> BaseModel | None:
    # An optional body left out has no type to check, whatever Content-Type says. aiohttp
    # keeps what read() returned, so reading again below costs nothing.
    if not required and not (await request.read()).strip():
        return None
    if request.content_type != "application/json":
        raise UnsupportedMedia("the body must be application/json")
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("the body is empty; a JSON object is expected", code="invalid_json")
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            raise BadRequest("the body is not valid JSON", code="invalid_json") from exc
        if any(d["type"] == "model_type" and d["field"] == "body" for d in details):
            raise BadRequest("the body must be a JSON object", code="invalid_json") from exc
        raise ValidationFailed("the body breaks a rule", details=details) from exc


def _read_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    params: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        params[key] = values if len(values) > 1 else values[0]
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise BadRequest(
            "a query parameter is invalid", code="invalid_query", details=_validation_details(exc)
        ) from exc


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an Authorization: Bearer token is required", code="missing_token")
    return token.strip()


async def _authenticate(ctx: Ctx, stack: AsyncExitStack, operation: Operation) -> None:
    claims = ctx.app[appkeys.tokens_key].decode(_bearer(ctx.request))
    # The transaction starts with no tenant; start_request sets the token's.
    conn = await stack.enter_async_context(tenant_tx(ctx.app[appkeys.db_pool_key], None))
    principal = await sessions_db.start_request(
        conn, claims.tenant_id, claims.session_id, claims.user_id
    )
    if principal is None:
        raise Unauthorized("the session has ended; log in again", code="session_revoked")
    structlog.contextvars.bind_contextvars(
        tenant=str(principal.tenant_id), user=str(principal.user_id)
    )
    ctx._principal, ctx._conn = principal, conn
    if operation.roles and principal.role not in operation.roles:
        raise Forbidden(f"this needs the role {' or '.join(operation.roles)}")
    limit = ctx.settings.requests_per_minute_user
    await ctx.app[appkeys.limiter_key].consume(
        f"req:{principal.user_id}", limit=limit, window=60, what="requests"
    )


def _endpoint(operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @functools.wraps(operation.handler)
    async def endpoint(request: web.Request) -> web.StreamResponse:
        ctx = Ctx(request)
        kwargs: dict[str, Any] = {}
        async with AsyncExitStack() as stack:
            if operation.auth:
                await _authenticate(ctx, stack, operation)
            if operation.query is not None:
                kwargs["query"] = _read_query(request, operation.query)
            if operation.body is not None:
                kwargs["body"] = await _read_body(
                    request, operation.body, required=operation.body_required
                )
            result = await operation.handler(ctx, **kwargs)
        for action in ctx._after_commit:
            await action()
        if isinstance(result, web.StreamResponse):
            return result
        return web.Response(
            body=cast(BaseModel, result).model_dump_json(by_alias=True),
            status=operation.status,
            content_type="application/json",
        )

    return endpoint


# --- OpenAPI 3.1 -----------------------------------------------------------------------------

_ERROR_TEXT = {
    400: "Malformed input (bad JSON or query parameter)",
    401: "Missing, expired, forged or revoked credentials",
    403: "Not allowed for this caller",
    404: "Not found in the caller's tenant",
    409: "Conflicts with existing data",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Body breaks a validation rule",
    429: "Rate limited; see Retry-After",
    503: "A dependency is unavailable",
}

# Once upgraded, a socket is refused with a close code (docs/realtime.md); a plain GET, which
# cannot be upgraded, is answered with the status that code stands for.
_SOCKET_REFUSALS = {
    400: "A plain GET (no Upgrade: websocket) that would otherwise be accepted",
    401: "Missing, expired or forged participant token (close code 4401)",
    403: "Not a participant, or a token for another session (close code 4403)",
    404: "No such session in the token's tenant (close code 4404)",
    410: "The session has ended (close code 4410)",
    503: "The database is unavailable; retry (close code 1013)",
}


def _iter_models(operations: list[Operation]) -> Iterator[type[BaseModel]]:
    yield ErrorResponse
    for op in operations:
        for model in (op.body, op.response, *(m for _, m in op.other_responses)):
            if model is not None:
                yield model


def openapi_document(operations: list[Operation], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``operations``."""
    from pydantic.json_schema import models_json_schema

    models = list(dict.fromkeys(_iter_models(operations)))
    _, defs = models_json_schema(
        [(m, "serialization") for m in models],
        by_alias=True,
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        # aiohttp's "{name:regex}" is plain "{name}" in OpenAPI.
        item = paths.setdefault(re.sub(r"\{(\w+):[^}]+\}", r"{\1}", op.path), {})
        item[op.method.lower()] = _operation_object(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pocdojo",
            "version": version,
            "description": "POCs, search, favorites and live collaborative dojos.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation_object(op: Operation) -> dict[str, Any]:
    doc = inspect.getdoc(op.handler) or ""
    result: dict[str, Any] = {
        "operationId": op.handler.__name__,
        "summary": op.summary,
        "description": doc,
        "tags": [op.tag],
    }
    path_types = dict(op.path_types)
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _path_schema(kind, path_types.get(name)),
        }
        for name, kind in re.findall(r"{(\w+)(?::([^}]+))?}", op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(by_alias=True)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameters.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    if parameters:
        result["parameters"] = parameters
    if op.body is not None:
        result["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    if op.websocket:
        result["parameters"] = [
            *parameters,
            {
                "name": "token",
                "in": "query",
                "required": True,
                "schema": {"type": "string"},
                "description": "the participant token from joining the session",
            },
        ]
        result["responses"] = {
            "101": {"description": "Switching Protocols: see docs/realtime.md for the messages"},
            **_error_responses(op.errors, _SOCKET_REFUSALS),
        }
        return result
    success: dict[str, Any] = {"description": "Success"}
    if op.response is not None:
        success["content"] = {op.media_type: {"schema": _ref(op.response)}}
    elif op.media_type != "application/json":
        success["content"] = {op.media_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): success}
    codes = set(op.errors)
    if op.body is not None:
        codes |= {400, 413, 415, 422}
    if op.query is not None:
        codes.add(400)
    if op.auth:
        codes |= {401, 429}
        result["security"] = [{"bearerAuth": []}]
    if op.roles:
        codes.add(403)
    responses.update(_error_responses(codes, _ERROR_TEXT))
    for code, model in op.other_responses:
        responses[str(code)] = {
            "description": _ERROR_TEXT.get(code, "Response"),
            "content": {"application/json": {"schema": _ref(model)}},
        }
    result["responses"] = responses
    return result


def _path_schema(kind: str, declared: Any) -> dict[str, Any]:
    if declared is not None:
        schema: dict[str, Any] = TypeAdapter(declared).json_schema()
        return schema
    return {"type": "string", "format": "uuid"} if kind == "uuid" else {"type": "string"}


def _error_responses(codes: Iterable[int], texts: dict[int, str]) -> dict[str, Any]:
    """The responses for error ``codes``, each in the one error shape."""
    return {
        str(code): {
            "description": texts.get(code, "Error"),
            "content": {"application/json": {"schema": _ref(ErrorResponse)}},
        }
        for code in sorted(codes)
    }
