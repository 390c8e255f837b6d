"""Profiles over HTTP: create, read (ETag), PATCH (If-Match), erase, export, look-up, identify,
and merge (scopes ``profiles:read`` / ``profiles:write``).

A merged-away id keeps working: reads and writes of it act on the profile it was merged into,
and the response says so with ``Content-Location: /v1/profiles/<target>`` and
``Rapport-Merged-Into: <target>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from flask import request, url_for
from flask.views import MethodView

from core.errors import InvalidInput
from profiles import document
from profiles.export import export_customer
from profiles.store import Profile
from service.access import current_key
from service.errors import MalformedRequest
from service.extensions import Blueprint
from service.json_stream import streamed_json
from service.schemas import StrictSchema, domain_rule, phone_field
from service.state import state

blp = Blueprint(
    "profiles",
    __name__,
    url_prefix="/v1/profiles",
    description="Unified customer profiles. `ETag` is the profile version; send it back in "
    "`If-Match` to update only what you read (412 otherwise).",
)


# -- validation ----------------------------------------------------------------------------------
_check = domain_rule  # a marshmallow validator from a ``profiles.document`` normaliser


def _nested_check(fn: Callable[..., Any], prefix: str, *args: Any) -> Callable[[Any], None]:
    """Like :func:`_check` for an object field, keeping the path below it in the error."""

    def validator(value: Any) -> None:
        try:
            fn(value, *args)
        except InvalidInput as err:
            path = (err.field or prefix).removeprefix(prefix).lstrip(".")
            if path:
                raise ma.ValidationError({path: [err.detail]}) from None
            raise ma.ValidationError(err.detail) from None

    return validator


def _consent(value: Any) -> None:
    document.normalise_consent_patch(value, time.time())


class ProfileInputSchema(StrictSchema):
    """Profile fields for create and PATCH; in a PATCH ``null`` deletes a field."""

    email = ma.fields.String(allow_none=True, validate=_check(document.normalise_email))
    phone = phone_field(allow_none=True)
    external_ids = ma.fields.List(
        ma.fields.String(validate=_check(document.normalise_external_id)),
        allow_none=True,
        validate=ma.validate.Length(max=document.MAX_EXTERNAL_IDS),
        metadata={"description": "`system:id` strings; replaces the list"},
    )
    first_name = ma.fields.String(
        allow_none=True, validate=_check(document.normalise_name, "first_name")
    )
    last_name = ma.fields.String(
        allow_none=True, validate=_check(document.normalise_name, "last_name")
    )
    display_name = ma.fields.String(
        allow_none=True, validate=_check(document.normalise_name, "display_name")
    )
    locale = ma.fields.String(
        allow_none=True,
        validate=_check(document.normalise_locale),
        metadata={"description": "BCP 47, e.g. `de-AT`"},
    )
    timezone = ma.fields.String(
        allow_none=True,
        validate=_check(document.normalise_timezone),
        metadata={"description": "IANA, e.g. `Europe/Vienna`"},
    )
    country = ma.fields.String(
        allow_none=True,
        validate=_check(document.normalise_country),
        metadata={"description": "ISO 3166-1 alpha-2"},
    )
    loyalty_tier = ma.fields.String(
        allow_none=True,
        validate=_check(document.normalise_tier),
        metadata={"enum": list(document.LOYALTY_TIERS)},
    )
    preferences = ma.fields.Dict(
        allow_none=True,
        validate=_nested_check(document.normalise_preferences_patch, "preferences"),
        metadata={
            "description": "`categories` (list), `channels` (chat/email/phone/sms), `language` "
            f"(BCP 47), `custom` (≤{document.MAX_CUSTOM_KEYS} keys of "
            f"≤{document.MAX_CUSTOM_KEY_LEN} "
            f"chars; values string ≤{document.MAX_CUSTOM_VALUE_LEN} chars, number or boolean). "
            "Merged key by key; `null` deletes."
        },
    )
    consent = ma.fields.Dict(
        allow_none=True,
        validate=_nested_check(_consent, "consent"),
        metadata={
            "description": "Per purpose (marketing, personalization, profiling): "
            "`{granted: bool, at: epoch s or ISO 8601 (default now), source: str}`; `null` "
            "deletes."
        },
    )


def _one_with_a_value(schema: type[ma.Schema]) -> dict[str, Any]:
    """JSON Schema for "at least one member, and not ``null``": one branch per field."""
    types = {ma.fields.List: "array", ma.fields.Dict: "object"}
    branches = [
        {
            "required": [name],
            "properties": {name: {"type": types.get(type(field), "string")}},
        }
        for name, field in schema._declared_fields.items()
    ]
    return {"minProperties": 1, "anyOf": branches}


class ProfileCreateSchema(ProfileInputSchema):
    """A new profile: at least one field with a value (an empty profile, ``{}`` or no body,
    is nobody); identities are optional (a name-only profile is a walk-in customer)."""

    spec_extras = _one_with_a_value(ProfileInputSchema)  # the same fields, in the spec

    @ma.validates_schema
    def not_empty(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not any(value is not None for value in data.values()):
            raise ma.ValidationError("give at least one field with a value, e.g. an identity")


class ProfileSchema(ma.Schema):
    id = ma.fields.String()
    email = ma.fields.String(allow_none=True, metadata={"description": "Primary email"})
    emails = ma.fields.List(ma.fields.String())
    phone = ma.fields.String(allow_none=True, metadata={"description": "Primary phone (E.164)"})
    phones = ma.fields.List(ma.fields.String())
    external_ids = ma.fields.List(ma.fields.String())
    first_name = ma.fields.String()
    last_name = ma.fields.String()
    display_name = ma.fields.String()
    locale = ma.fields.String()
    timezone = ma.fields.String()
    country = ma.fields.String()
    loyalty_tier = ma.fields.String()
    preferences = ma.fields.Dict()
    consent = ma.fields.Dict()
    created_at = ma.fields.Float(metadata={"description": "Unix time"})
    updated_at = ma.fields.Float(metadata={"description": "Unix time"})
    version = ma.fields.Integer()
    traits = ma.fields.Dict(metadata={"description": "Computed from purchases and events"})


_ONE = "Exactly one of `email`, `phone`, `external_id` (422 otherwise)."


class LookupQuerySchema(StrictSchema):
    email = ma.fields.String(metadata={"description": _ONE})
    phone = phone_field(metadata={"description": f"E.164 (`+43…`). {_ONE}"})
    external_id = ma.fields.String(metadata={"description": f"`system:id`. {_ONE}"})

    @ma.validates_schema
    def exactly_one(self, data: dict[str, Any], **_kwargs: Any) -> None:
        message = "give exactly one of email, phone, external_id"
        if not data:
            raise ma.ValidationError(message)
        if len(data) > 1:  # every one given is at fault
            raise ma.ValidationError({name: [message] for name in sorted(data)})


class IdentitiesSchema(StrictSchema):
    # at least one identity: an email, a phone or one external id (an empty list is none)
    spec_extras = {
        "minProperties": 1,
        "anyOf": [
            {"required": ["email"]},
            {"required": ["phone"]},
            {"required": ["external_ids"], "properties": {"external_ids": {"minItems": 1}}},
        ],
    }

    email = ma.fields.String(validate=_check(document.normalise_email))
    phone = phone_field()
    external_ids = ma.fields.List(
        ma.fields.String(validate=_check(document.normalise_external_id)),
        validate=ma.validate.Length(max=document.MAX_EXTERNAL_IDS),
    )

    @ma.validates_schema
    def at_least_one(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("give at least one identity")


class AttributesSchema(ProfileInputSchema):
    class Meta:
        exclude = ("email", "phone", "external_ids")


class IdentifySchema(StrictSchema):
    identities = ma.fields.Nested(IdentitiesSchema, required=True)
    attributes = ma.fields.Nested(AttributesSchema, load_default=dict)


class IdentifyResultSchema(ma.Schema):
    outcome = ma.fields.String(metadata={"enum": ["created", "attached", "merged", "matched"]})
    attached = ma.fields.List(ma.fields.String(), metadata={"description": "kind:value"})
    merges = ma.fields.List(ma.fields.Dict())
    profile = ma.fields.Nested(ProfileSchema)


class MergeRequestSchema(StrictSchema):
    source_id = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))


class MergeRecordSchema(ma.Schema):
    id = ma.fields.String()
    status = ma.fields.String(
        metadata={"enum": ["merging", "done", "unmerging", "unmerged", "erased", "abandoned"]}
    )
    source_id = ma.fields.String()
    target_id = ma.fields.String()
    actor = ma.fields.String()
    reason = ma.fields.String()
    at = ma.fields.Float()
    done_at = ma.fields.Float()
    source = ma.fields.Dict(metadata={"description": "The source profile before the merge"})
    source_activity = ma.fields.List(ma.fields.Dict())
    moved = ma.fields.Dict()
    steps = ma.fields.List(ma.fields.String())
    unmerged_at = ma.fields.Float()
    unmerged_by = ma.fields.String()
    returned_identities = ma.fields.List(ma.fields.String())
    not_restored = ma.fields.List(ma.fields.String())
    target_version_before = ma.fields.Integer()
    unmerge_steps = ma.fields.List(ma.fields.String())
    erased_at = ma.fields.Float()
    previous_status = ma.fields.String()


class EraseReportSchema(ma.Schema):
    customer_id = ma.fields.String()
    requested_id = ma.fields.String()
    erased_ids = ma.fields.List(ma.fields.String(), metadata={"description": "With aliases"})
    keys_deleted = ma.fields.List(ma.fields.String())
    keys_deleted_count = ma.fields.Integer()
    identities_released = ma.fields.List(ma.fields.String())
    merge_records_scrubbed = ma.fields.List(ma.fields.String())


class ExportSchema(ma.Schema):
    customer_id = ma.fields.String()
    exported_at = ma.fields.Float()
    profile = ma.fields.Nested(ProfileSchema)
    activity = ma.fields.Dict(metadata={"description": "Purchases, events, traits"})
    merged_ids = ma.fields.List(ma.fields.String())
    merges = ma.fields.List(ma.fields.Nested(MergeRecordSchema))
    feedback = ma.fields.List(
        ma.fields.Dict(),
        metadata={"description": "Next-best-action and product feedback about the customer"},
    )


ETAG = {"ETag": {"description": 'The profile version, e.g. `"3"`', "schema": {"type": "string"}}}
IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "description": 'The `ETag` you read (`"3"`); a stale one is 412, an empty one 400. Absent '
    "or `*`: any version.",
    "schema": {"type": "string", "minLength": 1},
}


# -- helpers -------------------------------------------------------------------------------------
def actor() -> str:
    key = current_key()
    return f"apikey:{key.key_id} ({key.name})"


def _headers(profile: Profile) -> dict[str, str]:
    headers = {"ETag": f'"{profile.version}"'}
    if profile.merged_from:
        headers["Content-Location"] = url_for("profiles.ProfileItem", customer_id=profile.id)
        headers["Rapport-Merged-Into"] = profile.id
    return headers


def _if_match() -> int | None:
    """The version in ``If-Match`` (``"7"``, ``W/"7"``); None when absent or ``*``; an empty
    one is no entity tag at all (RFC 9110 13.1.1): 400 on the header."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    if not header.strip():
        raise MalformedRequest(
            'If-Match is empty: send the ETag you read ("3") or leave the header out',
            field="If-Match",
            location="header",
        )
    value = header.strip().removeprefix("W/").strip('"')
    try:
        return int(value)
    except ValueError:
        return -1  # matches no version: 412


# -- views ---------------------------------------------------------------------------------------
@blp.route("")
class Profiles(MethodView):
    @blp.audit("read")
    @blp.auth("profiles:read")
    @blp.arguments(LookupQuerySchema, location="query")
    @blp.response(200, ProfileSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query):
        """Look a profile up by exactly one identity: `email`, `phone` or `external_id`."""
        ((name, value),) = query.items()
        if name == "phone" and value.startswith(" "):
            value = "+" + value.lstrip()  # an unencoded '+' in the query string arrives as ' '
        profile = state().profiles.lookup_input(name, value)
        return profile.public(), _headers(profile)

    @blp.audit("create")
    @blp.auth("profiles:write")
    @blp.arguments(ProfileCreateSchema)
    @blp.response(201, ProfileSchema)
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body):
        """Create a profile from at least one field with a value (422 for an empty body). 409
        when an identity belongs to another profile."""
        profile = state().profiles.create(body)
        headers = _headers(profile)
        headers["Location"] = url_for("profiles.ProfileItem", customer_id=profile.id)
        return profile.public(), headers


@blp.route("/identify")
class Identify(MethodView):
    @blp.audit("identify")
    @blp.auth("profiles:write")
    @blp.arguments(IdentifySchema)
    @blp.response(200, IdentifyResultSchema)
    @blp.alt_response(201, schema=IdentifyResultSchema, description="A new profile was created")
    def post(self, body):
        """Upsert by any known identity: create, attach new identities, or merge the profiles
        the identities belong to (into the oldest one)."""
        profile, outcome = state().profiles.identify(
            body["identities"], body.get("attributes") or {}, actor=actor()
        )
        profile = state().profiles.get(profile.id)
        status = 201 if outcome["outcome"] == "created" else 200
        headers = _headers(profile)
        headers["Location"] = url_for("profiles.ProfileItem", customer_id=profile.id)
        return {**outcome, "profile": profile.public()}, status, headers


@blp.route("/<string:customer_id>")
class ProfileItem(MethodView):
    @blp.audit("read")
    @blp.auth("profiles:read")
    @blp.response(200, ProfileSchema, headers=ETAG, final=True)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, customer_id):
        """Read a profile with its computed traits; `ETag` is its version."""
        profile = state().profiles.get(customer_id)
        return profile.public(), _headers(profile)

    @blp.audit("update")
    @blp.auth("profiles:write")
    @blp.arguments(ProfileInputSchema)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, ProfileSchema, headers=ETAG)
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    def patch(self, body, customer_id):
        """Merge-patch: fields replace, `null` deletes, `preferences`/`consent` merge key by key.
        With `If-Match`, a stale version is 412; without, concurrent writes are all kept."""
        store = state().profiles
        store.patch(customer_id, body, expected_version=_if_match())
        profile = store.get(customer_id)
        return profile.public(), _headers(profile)

    @blp.audit("erase")
    @blp.auth("profiles:write")
    @blp.response(200, EraseReportSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, customer_id):
        """Erase the customer everywhere (GDPR) and report what was erased."""
        return state().profiles.erase(customer_id)


@blp.route("/<string:customer_id>/export")
class ProfileExport(MethodView):
    @blp.audit("export")
    @blp.auth("profiles:read")
    @blp.response(200, ExportSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, customer_id):
        """Everything held about the customer: profile, traits, purchases, events, merges,
        feedback."""
        st = state()
        # Streamed, piece by piece (service/json_stream.py): the same bytes as one document.
        return streamed_json(
            ExportSchema().dump(export_customer(st.profiles, st.contacts, customer_id))
        )


@blp.route("/<string:customer_id>/merge")
class ProfileMerge(MethodView):
    @blp.audit("merge")
    @blp.auth("profiles:write")
    @blp.arguments(MergeRequestSchema)
    @blp.response(201, MergeRecordSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body, customer_id):
        """Merge `source_id` into this profile; the source id then resolves to this one."""
        record = state().profiles.merges.merge(body["source_id"], customer_id, actor=actor())
        return record, {"Location": url_for("merges.MergeItem", merge_id=record["id"])}
