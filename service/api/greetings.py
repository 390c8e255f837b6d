"""Greetings for a customer or a caller, and the admin API for greeting templates.

Reading a greeting needs ``profiles:read``; templates need ``admin``. See
``recommend/engage/greetings.py`` for the template variables, the sandbox and the locale chain.
"""

from __future__ import annotations

import re

import marshmallow as ma
from flask.views import MethodView

from core.channels import CHANNELS
from core.errors import InvalidInput
from profiles.errors import ProfileNotFound
from recommend.engage.facts import empty_facts
from recommend.engage.greetings import VARIABLES
from recommend.engage.sandbox import MAX_TEMPLATE_CHARS
from service.extensions import Blueprint
from service.schemas import NOT_BLANK, StrictSchema, phone_field
from service.state import state

blp = Blueprint(
    "greetings",
    __name__,
    url_prefix="/v1",
    description="Personalised greetings (scope `profiles:read`) and their templates "
    "(scope `admin`).",
)

_LOCALE = {"description": "A locale tag such as `de-AT`; fallback `de-AT` → `de` → `en`."}
# A locale tag as greetings read it (language, then a region or a UN M.49 area code).
LOCALE_PATH = r"^[A-Za-z]{2,3}(?:[-_](?:[A-Za-z]{2}|[0-9]{3}))?$"


class GreetingQuerySchema(StrictSchema):
    channel = ma.fields.String(load_default="chat", validate=ma.validate.OneOf(CHANNELS))
    locale = ma.fields.String(
        validate=ma.validate.Regexp(LOCALE_PATH, error="a tag such as 'en', 'de' or 'de-AT'"),
        metadata={**_LOCALE, "example": "de-AT"},
    )


_AT_MOST_ONE = "At most one of `email`, `phone`, `external_id` (422 otherwise)."


class CallerGreetingQuerySchema(GreetingQuerySchema):
    email = ma.fields.String(
        validate=ma.validate.Length(1, 254), metadata={"description": _AT_MOST_ONE}
    )
    phone = phone_field(metadata={"description": f"E.164 (`+43…`). {_AT_MOST_ONE}"})
    external_id = ma.fields.String(
        validate=ma.validate.Length(1, 200),
        metadata={"description": f"`system:id`. {_AT_MOST_ONE}"},
    )

    @ma.validates_schema
    def one_identity(self, data, **kwargs):
        given = [k for k in ("email", "phone", "external_id") if k in data]
        if len(given) > 1:  # every one given is at fault
            message = "give at most one of email, phone, external_id"
            raise ma.ValidationError({name: [message] for name in given})


class TemplateRefSchema(ma.Schema):
    id = ma.fields.String(metadata={"example": "default:de:phone"})
    origin = ma.fields.String(metadata={"description": "custom, default or builtin"})
    locale = ma.fields.String()
    version = ma.fields.String(metadata={"description": "sha256 prefix of the source"})
    fallback = ma.fields.Boolean(
        metadata={
            "description": "The template is not in the requested language (`fi-FI` served "
            "by `en`; `de-AT` served by `de` is not a fallback), or the stored template failed "
            "and the default was used."
        }
    )


class GreetingSchema(ma.Schema):
    customer_id = ma.fields.String(allow_none=True)
    known = ma.fields.Boolean()
    text = ma.fields.String(metadata={"description": "Plain text, for speech and chat."})
    html = ma.fields.String(metadata={"description": "The autoescaped render (HTML-safe)."})
    channel = ma.fields.String()
    locale = ma.fields.String(metadata={"description": "The locale of the template used."})
    requested_locale = ma.fields.String(allow_none=True)
    format_locale = ma.fields.String(
        metadata={
            "description": "The locale dates, numbers and money are formatted for: the "
            "requested locale when it has the template's language (`de-AT`), else the "
            "template's locale (`en` for `fi-FI`).",
            "example": "de-AT",
        }
    )
    template = ma.fields.Nested(TemplateRefSchema)
    facts = ma.fields.Dict(
        keys=ma.fields.String(),
        metadata={"description": "The template variables the greeting could use, when known."},
    )


class TemplateSchema(ma.Schema):
    locale = ma.fields.String()
    channel = ma.fields.String()
    source = ma.fields.String()
    origin = ma.fields.String(metadata={"description": "custom (admin override) or default"})
    version = ma.fields.String()
    updated_at = ma.fields.Float(allow_none=True)


class TemplateListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TemplateSchema))
    variables = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(),
        metadata={"description": "The documented variables a template may use."},
    )


class TemplateInputSchema(StrictSchema):
    source = ma.fields.String(
        required=True,
        validate=[ma.validate.Length(1, MAX_TEMPLATE_CHARS), ma.validate.Regexp(NOT_BLANK)],
        metadata={
            "description": "A Jinja2 template over the documented variables, not only spaces; "
            "no calls, loops, includes or underscore attributes (a template that does not "
            "compile in the sandbox is a 422 naming `source`).",
            "example": "Hallo{% if name %} {{ name }}{% endif %}!",
        },
    )


def _greeting(facts: dict, query: dict, overrides: dict | None = None) -> dict:
    greeter = state().engage.greeter
    result = greeter.greet(facts, query["channel"], query.get("locale"), overrides=overrides)
    return {"customer_id": facts.get("customer_id"), "known": facts.get("known"), **result}


@blp.route("/profiles/<string:customer_id>/greeting")
class ProfileGreeting(MethodView):
    @blp.audit("read")
    @blp.auth("profiles:read")
    @blp.arguments(GreetingQuerySchema, location="query")
    @blp.response(200, GreetingSchema, final=True)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, customer_id):
        """A greeting for a customer, in their locale and local time of day."""
        engage = state().engage
        # the template overrides ride along with the profile read: one round trip
        facts, (overrides,) = engage.facts.load(
            customer_id, extra=[engage.templates.queue_overrides]
        )
        return _greeting(facts, query, overrides)


@blp.route("/greeting")
class CallerGreeting(MethodView):
    @blp.audit("read")
    @blp.auth("profiles:read")
    @blp.arguments(CallerGreetingQuerySchema, location="query")
    @blp.response(200, GreetingSchema)
    def get(self, query):
        """A greeting for a caller known by an identity; an unknown caller gets a generic one."""
        st = state()
        facts = empty_facts()
        for field in ("email", "phone", "external_id"):
            if field in query:
                try:
                    facts = st.engage.facts.for_profile(
                        st.profiles.lookup_input(field, query[field])
                    )
                except ProfileNotFound:
                    pass
        return _greeting(facts, query)


@blp.not_audited("greeting templates (admin): no profile data")
@blp.route("/greeting-templates")
class GreetingTemplates(MethodView):
    @blp.auth("admin")
    @blp.response(200, TemplateListSchema)
    def get(self):
        """Every greeting template: admin overrides and shipped defaults."""
        return {"items": state().engage.templates.list(), "variables": VARIABLES}


# The path's rules in the spec, and checked here first so a request breaking them is a 422 on
# the path whatever the store would make of it (recommend/engage/language.py normalises
# `de_at` and `DE-at` to `de-AT`).
TEMPLATE_PATH = [
    {
        "in": "path",
        "name": "locale",
        "description": "A locale tag: `de`, `de-AT`, `es-419`",
        "schema": {"type": "string", "pattern": LOCALE_PATH},
    },
    {"in": "path", "name": "channel", "schema": {"type": "string", "enum": list(CHANNELS)}},
]


def _template_path(locale: str, channel: str) -> None:
    if not re.match(LOCALE_PATH, locale):
        raise InvalidInput("locale is a tag such as 'en', 'de' or 'de-AT'", field="locale")
    if channel not in CHANNELS:
        raise InvalidInput(f"channel is one of {', '.join(CHANNELS)}", field="channel")


@blp.not_audited("greeting templates (admin): no profile data")
@blp.route("/greeting-templates/<string:locale>/<string:channel>", parameters=TEMPLATE_PATH)
class GreetingTemplate(MethodView):
    @blp.auth("admin")
    @blp.response(200, TemplateSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, locale, channel):
        """One template (the override when there is one, else the default)."""
        _template_path(locale, channel)
        return state().engage.templates.get(locale, channel)

    @blp.auth("admin")
    @blp.arguments(TemplateInputSchema)
    @blp.response(200, TemplateSchema)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def put(self, body, locale, channel):
        """Replace a template; it is validated (syntax, variables, sandbox rules, length)."""
        _template_path(locale, channel)
        entry, _ = state().engage.templates.put(locale, channel, body["source"])
        return entry

    @blp.auth("admin")
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def delete(self, locale, channel):
        """Remove the override: the shipped default applies again."""
        _template_path(locale, channel)
        state().engage.templates.delete(locale, channel)
