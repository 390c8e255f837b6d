"""The event item schemas of the OpenAPI document (service/api/event_schemas.py) are the
payloads the domain accepts (profiles.activity_input.normalise_event): no drift either way."""

from __future__ import annotations

import time

import pytest
import redis

from core.errors import InvalidInput
from profiles.activity_input import EVENT_COMMON, EVENT_TYPES, normalise_event
from profiles.event_batch import CUSTOMER_FIELDS
from service import create_app


@pytest.fixture(scope="module")
def schemas() -> dict:
    app = create_app({"testing": True}, redis=redis.Redis(port=1))  # the spec needs no Redis
    return app.test_client().get("/openapi.json").get_json()["components"]["schemas"]


def _component(schemas: dict, event_type: str) -> dict:
    event = schemas["Event"]
    ref = event["discriminator"]["mapping"][event_type]
    assert {"$ref": ref} in event["oneOf"]
    return schemas[ref.rsplit("/", 1)[-1]]


def _example(component: dict) -> dict:
    """Every documented property, at its example value (the customer aside)."""
    props = component["properties"]
    return {name: p["example"] for name, p in props.items() if name != "customer"}


def test_every_event_type_has_a_schema(schemas):
    assert set(schemas["Event"]["discriminator"]["mapping"]) == set(EVENT_TYPES)
    assert set(schemas["CustomerRef"]["properties"]) == set(CUSTOMER_FIELDS)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_the_documented_event_is_the_accepted_one(schemas, event_type):
    component = _component(schemas, event_type)
    assert component["properties"]["type"]["enum"] == [event_type]
    example = _example(component)
    stored = normalise_event(example, time.time())  # every documented field is accepted
    documented = set(component["properties"]) - set(EVENT_COMMON) - {"customer"}
    payload = stored["payload"].get("purchase", stored["payload"])
    assert documented <= set(payload)
    for name in set(component["required"]) - {"customer"}:  # a required one is required
        with pytest.raises(InvalidInput):
            normalise_event({k: v for k, v in example.items() if k != name}, time.time())
    with pytest.raises(InvalidInput):  # and nothing undocumented is accepted
        normalise_event({**example, "undocumented": "x"}, time.time())
