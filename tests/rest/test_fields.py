"""Rules every request shares, checked on every model the routes declare, so that a field
added later cannot miss them."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from pocdojo.app import ROUTES

# In the future and storable by PostgreSQL, but year 10000 in UTC, where asyncpg converts to.
OUT_OF_RANGE = "9999-12-31T23:00:00-14:00"


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def request_models() -> list[type[BaseModel]]:
    """Every body and query model of every route, and the models nested in them."""
    found: dict[type[BaseModel], None] = {}
    todo = [
        model
        for group in ROUTES
        for op in group.operations
        for model in (op.body, op.query)
        if model is not None
    ]
    while todo:
        model = todo.pop()
        if model in found:
            continue
        found[model] = None
        for field in model.model_fields.values():
            todo.extend(_models_in(field.annotation))
    return list(found)


def _is_datetime(schema: dict[str, Any]) -> bool:
    options = [schema, *schema.get("anyOf", [])]
    return any(option.get("format") == "date-time" for option in options)


def datetime_fields() -> list[tuple[type[BaseModel], str]]:
    """(model, wire name) of every date-time a request takes."""
    return [
        (model, name)
        for model in request_models()
        for name, schema in model.model_json_schema(by_alias=True)["properties"].items()
        if _is_datetime(schema)
    ]


def test_the_requests_take_date_times() -> None:
    names = {f"{model.__name__}.{name}" for model, name in datetime_fields()}
    assert {"SearchQuery.createdFrom", "ChatQuery.before", "SessionCreate.scheduledAt"} <= names


@pytest.mark.parametrize(
    ("model", "name"), datetime_fields(), ids=lambda v: getattr(v, "__name__", v)
)
def test_every_date_time_refuses_moments_that_cannot_be_converted_to_utc(
    model: type[BaseModel], name: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({name: OUT_OF_RANGE})
    mine = [e for e in caught.value.errors() if e["loc"] == (name,)]
    assert mine, caught.value
    assert "UTC" in mine[0]["msg"]


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2024-01-31", "2024-01-31 12:00:00Z"])
@pytest.mark.parametrize(
    ("model", "name"), datetime_fields(), ids=lambda v: getattr(v, "__name__", v)
)
def test_every_date_time_refuses_what_is_not_an_rfc_3339_date_time(
    model: type[BaseModel], name: str, value: str
) -> None:
    """Queries are read leniently, where pydantic would take a number for Unix time."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate({name: value})
    assert [e for e in caught.value.errors() if e["loc"][:1] == (name,)], caught.value
