"""Next-best actions for a customer, feedback on them, and the admin action catalogue.

Scopes: reading the ranked actions needs ``recommend:read`` (they are suggestions, product
picks included, not profile data; a console key holds it beside ``profiles:read``); feedback
needs ``actions:write``; the catalogue and the statistics need ``admin``. The score, the
action fields and the contact rule are documented in ``recommend/engage/actions.py``,
``recommend/engage/action_catalog.py`` and ``recommend/engage/contact.py``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import cast

import marshmallow as ma
from flask import g
from flask.views import MethodView

from core.channels import CHANNELS
from core.errors import InvalidInput
from recommend.engage import adaptive, learning_admin, uplift
from recommend.engage.actions import MAX_LIMIT
from recommend.engage.contact import OUTCOMES, PRODUCT_SUGGESTION, ContactPolicy
from recommend.engage.facts import build_facts
from service.api.action_performance import (
    ExperimentInputSchema,
    ExperimentSchema,
    LearningResetSchema,
    PerformanceQuerySchema,
    PerformanceSchema,
)
from service.api.action_schemas import (
    ACTION_ID_RE,
    ActionInputSchema,
    ActionListInputSchema,
    ActionListSchema,
    ActionSchema,
    ActionStatsListSchema,
)
from service.auditing import admin_change
from service.extensions import Blueprint
from service.schemas import StrictSchema
from service.state import state

blp = Blueprint(
    "actions",
    __name__,
    url_prefix="/v1",
    description="Next-best actions (scope `recommend:read`), feedback (`actions:write`) and "
    "the action catalogue and statistics (`admin`). Product suggestions made outside the "
    "actions report feedback to `product-feedback`.",
)


# -- schemas -------------------------------------------------------------------------------
class NbaQuerySchema(StrictSchema):
    limit = ma.fields.Integer(load_default=3, validate=ma.validate.Range(1, MAX_LIMIT))
    channel = ma.fields.String(load_default="chat", validate=ma.validate.OneOf(CHANNELS))
    context = ma.fields.String(
        validate=ma.validate.Length(1, 64),
        metadata={"description": "Where the agent is, e.g. `checkout`; rules see it."},
    )
    locale = ma.fields.String(validate=ma.validate.Length(1, 35))


class ProductRefSchema(ma.Schema):
    product_id = ma.fields.String()
    name = ma.fields.String()
    category = ma.fields.String(allow_none=True)
    price = ma.fields.String(allow_none=True)
    currency = ma.fields.String(allow_none=True)
    score = ma.fields.Float(allow_none=True)
    price_text = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "The price in its currency, formatted like the say line "
            "(`format_locale`)",
            "example": "1,65\u00a0£",
        },
    )


class NbaItemSchema(ma.Schema):
    action_id = ma.fields.String()
    title = ma.fields.String()
    category = ma.fields.String()
    say = ma.fields.String(allow_none=True, metadata={"description": "A line the agent can say"})
    locale = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "The language of the say line: the first locale of the customer's "
            "chain (`de-AT` → `de` → `en`) the action has a line for; null without a line",
            "example": "de",
        },
    )
    fallback = ma.fields.Boolean(
        metadata={"description": "The say line is not in the requested language (`fi-FI` → `en`)"}
    )
    format_locale = ma.fields.String(
        metadata={
            "description": "The locale the say line's dates, numbers and money (and "
            "`product.price_text`) are formatted for: the requested locale when it has the "
            "line's language, else the line's locale",
            "example": "de-AT",
        }
    )
    score = ma.fields.Float(metadata={"description": "value × propensity"})
    value = ma.fields.Float()
    propensity = ma.fields.Float()
    reasons = ma.fields.List(
        ma.fields.String(), metadata={"description": "Why, for the agent (English)"}
    )
    exploring = ma.fields.Boolean(
        metadata={
            "description": "Ranked by a sample of the learned propensity above its estimate "
            "(exploration, to learn more about the action); the reasons say so"
        }
    )
    product = ma.fields.Nested(ProductRefSchema, allow_none=True)
    cooldown_days = ma.fields.Float()


class WithheldSchema(ma.Schema):
    action_id = ma.fields.String()
    reason = ma.fields.String(
        metadata={"description": "no_consent, cooldown, budget or no_product"}
    )
    consent = ma.fields.String()
    until = ma.fields.Float(metadata={"description": "end of the cooldown (Unix time)"})


class BudgetSchema(ma.Schema):
    channel = ma.fields.String()
    limit = ma.fields.Integer()
    used = ma.fields.Integer()
    remaining = ma.fields.Integer()


class NbaSchema(ma.Schema):
    customer_id = ma.fields.String()
    channel = ma.fields.String()
    context = ma.fields.String(allow_none=True)
    group = ma.fields.String(
        metadata={
            "description": "adaptive (propensity learned per customer segment) or control "
            "(the global acceptance rate): a stable share of customers, to measure the uplift"
        }
    )
    items = ma.fields.List(ma.fields.Nested(NbaItemSchema))
    withheld = ma.fields.List(ma.fields.Nested(WithheldSchema))
    budget = ma.fields.Nested(BudgetSchema)


class FeedbackInputSchema(StrictSchema):
    feedback_id = ma.fields.String(
        required=True,
        validate=ma.validate.Length(1, 100),
        metadata={"description": "The client's id: a retry with the same id is not counted"},
    )
    outcome = ma.fields.String(required=True, validate=ma.validate.OneOf(OUTCOMES))
    agent_id = ma.fields.String(required=True, validate=ma.validate.Length(1, 100))
    note = ma.fields.String(validate=ma.validate.Length(max=1000))
    channel = ma.fields.String(load_default="chat", validate=ma.validate.OneOf(CHANNELS))
    product_id = ma.fields.String(
        validate=ma.validate.Length(1, 64),
        metadata={"description": "The product offered (product actions): it then rests"},
    )
    context = ma.fields.String(
        validate=ma.validate.Length(1, 64),
        metadata={"description": "The context the action was shown in (its segment learns)"},
    )


class FeedbackSchema(ma.Schema):
    feedback_id = ma.fields.String()
    customer_id = ma.fields.String()
    action_id = ma.fields.String()
    outcome = ma.fields.String()
    agent_id = ma.fields.String()
    channel = ma.fields.String()
    note = ma.fields.String(allow_none=True)
    product_id = ma.fields.String(allow_none=True)
    at = ma.fields.Float()
    duplicate = ma.fields.Boolean(metadata={"description": "a retry of a recorded feedback"})


# -- views ---------------------------------------------------------------------------------
@blp.route("/profiles/<string:customer_id>/next-best-actions")
class NextBestActions(MethodView):
    @blp.audit("read")
    @blp.auth("recommend:read")
    @blp.arguments(NbaQuerySchema, location="query")
    @blp.response(200, NbaSchema, final=True)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, customer_id):
        """The customer's top actions with score and reasons, under the contact policy."""
        engage = state().engage
        facts = engage.facts.for_customer(customer_id)
        return engage.nba.rank(
            facts,
            channel=query["channel"],
            context=query.get("context"),
            limit=query["limit"],
            locale=query.get("locale"),
            request_id=g.get("request_id") or "",
        )


@blp.route("/profiles/<string:customer_id>/next-best-actions/<string:action_id>/feedback")
class ActionFeedback(MethodView):
    @blp.audit("update")
    @blp.auth("actions:write")
    @blp.arguments(FeedbackInputSchema)
    @blp.response(201, FeedbackSchema)
    @blp.alt_response(200, schema=FeedbackSchema, description="A retry: the stored feedback")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, body, customer_id, action_id):
        """Record accepted / dismissed / completed; idempotent by ``feedback_id``.
        ``accepted``/``dismissed`` on an action not shown to the customer within the
        impression window (nor answered before) is 422 with field ``action_id``."""
        st = state()
        profile = st.profiles.get(customer_id)
        action = st.engage.actions.get(action_id)
        policy = st.engage.policy
        impressed = policy.check_shown(profile.id, action_id, body["feedback_id"], body["outcome"])
        context = {"name": body.get("context"), "channel": body["channel"]}
        facts = build_facts(profile.id, profile.doc, profile.traits, context=context)
        segment = adaptive.segment_of(facts, action)
        return _record(policy, profile.id, action, body, segment, impressed)


def _record(
    policy: ContactPolicy,
    customer_id: str,
    action: dict,
    body: dict,
    segment: dict[str, str] | None = None,
    impressed: bool = False,
):
    record, created = policy.record_feedback(
        customer_id,
        action,
        feedback_id=body["feedback_id"],
        outcome=body["outcome"],
        agent_id=body["agent_id"],
        channel=body["channel"],
        note=body.get("note"),
        product_id=body.get("product_id"),
        segment=segment,
        impressed=impressed,
    )
    out = {**record, "customer_id": customer_id, "duplicate": not created}
    return (out, 201) if created else (out, 200)


class ProductFeedbackInputSchema(FeedbackInputSchema):
    product_id = ma.fields.String(
        required=True,
        validate=ma.validate.Length(1, 64),
        metadata={"description": "The product the agent offered"},
    )


@blp.route("/profiles/<string:customer_id>/product-feedback")
class ProductFeedback(MethodView):
    @blp.audit("update")
    @blp.auth("actions:write")
    @blp.arguments(ProductFeedbackInputSchema)
    @blp.response(201, FeedbackSchema)
    @blp.alt_response(200, schema=FeedbackSchema, description="A retry: the stored feedback")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body, customer_id):
        """Feedback on a product offered from the recommendations: it uses the customer's
        contact budget for the channel and the product rests (see the contact rule)."""
        st = state()
        target = st.profiles.get(customer_id, with_traits=False).id
        return _record(st.engage.policy, target, PRODUCT_SUGGESTION, body)


@blp.not_audited("action catalogue (admin): no profile data")
@blp.route("/actions")
class Actions(MethodView):
    @blp.auth("admin")
    @blp.response(200, ActionListSchema)
    def get(self):
        """The action catalogue."""
        return {"items": state().engage.actions.list()}

    @blp.auth("admin")
    @blp.arguments(ActionListInputSchema)
    @blp.response(200, ActionListSchema)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def put(self, body):
        """Replace the whole catalogue (all validated before anything is written)."""
        return {"items": state().engage.actions.replace_all(body["items"])}

    @blp.auth("admin")
    @blp.response(200, ActionListSchema)
    def delete(self):
        """Reset the catalogue to the shipped defaults."""
        return {"items": state().engage.actions.reset()}


@blp.not_audited("action statistics (admin): counts, no profile ids")
@blp.route("/actions/stats")
class ActionStats(MethodView):
    @blp.auth("admin")
    @blp.response(200, ActionStatsListSchema)
    def get(self):
        """Per-action statistics: shown (offers), accepted, dismissed, completed, rate."""
        engage = state().engage
        ids = [a["id"] for a in engage.actions.list()] + [PRODUCT_SUGGESTION["id"]]
        stats = engage.policy.stats(ids)
        return {"items": [{"action_id": k, **v} for k, v in sorted(stats.items())]}


@blp.not_audited("aggregate statistics: no profile data")
@blp.route("/actions/performance")
class ActionPerformance(MethodView):
    @blp.auth("admin")
    @blp.arguments(PerformanceQuerySchema, location="query")
    @blp.response(200, PerformanceSchema)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, query):
        """Acceptance per action and experiment group (adaptive, control) over UTC days, with
        Wilson 95% intervals and the uplift of adaptive over control."""
        st = state()
        end = query.get("to") or datetime.now(UTC).date()
        start = query.get("from_") or end - timedelta(days=min(29, (end - date.min).days))
        if start > end:
            raise InvalidInput("from is after to", field="from")
        if (end - start).days >= adaptive.RETAIN_DAYS:
            raise InvalidInput(f"at most {adaptive.RETAIN_DAYS} days", field="from")
        pipe = st.redis.pipeline(transaction=False)
        days = uplift.days_between(start, end)
        for day in days:
            pipe.hgetall(st.keys.action_outcomes(day))
        ids = [a["id"] for a in st.engage.actions.list()] + [PRODUCT_SUGGESTION["id"]]
        raws = pipe.execute()
        out = uplift.performance(raws, ids) | {"daily": uplift.daily(days, raws)}
        if query.get("segment"):
            out |= uplift.segment_report(st.redis, st.keys, days, ids, query["segment"])
        st.engage.policy.refresh_experiment()
        control = st.engage.policy.learning.control_share
        return {"from_": start.isoformat(), "to": end.isoformat(), "control_share": control, **out}


@blp.not_audited("action catalogue (admin): no profile data")
@blp.route(
    "/actions/<string:action_id>",
    parameters=[
        {"in": "path", "name": "action_id", "schema": {"type": "string", "pattern": ACTION_ID_RE}}
    ],
)
class Action(MethodView):
    @blp.auth("admin")
    @blp.response(200, ActionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, action_id):
        """One action."""
        return state().engage.actions.get(action_id)

    @blp.auth("admin")
    @blp.arguments(ActionInputSchema)
    @blp.response(200, ActionSchema)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def put(self, body, action_id):
        """Create or replace an action; rules and the say line are validated."""
        doc, _ = state().engage.actions.put(action_id, body)
        return doc

    @blp.auth("admin")
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, action_id):
        """Remove an action (``DELETE /v1/actions`` restores the defaults)."""
        state().engage.actions.delete(action_id)


# -- the learning's admin operations: audited (action ``admin``) and logged with the details --
@blp.audit("admin")
@blp.route("/actions/<string:action_id>/learning/reset")
class ActionLearningReset(MethodView):
    @blp.auth("admin")
    @blp.response(200, LearningResetSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, action_id):
        """Zero what the adaptive propensity learned about the action (its segment counters
        and per-group outcome buckets); feedback records and global statistics stay."""
        st = state()
        st.engage.actions.get(action_id)  # 404 for an unknown action
        out = learning_admin.reset_learning(st.redis, st.keys, action_id)
        admin_change("learning_reset", **out)
        return out


@blp.audit("admin")
@blp.route("/actions/experiment")
class ActionExperiment(MethodView):
    @blp.not_audited("reads the experiment settings: no profile, no change")
    @blp.auth("admin")
    @blp.response(200, ExperimentSchema)
    def get(self):
        """The experiment settings in force (configured, or stored by an admin)."""
        return _experiment_view()

    @blp.auth("admin")
    @blp.arguments(ExperimentInputSchema)
    @blp.response(200, ExperimentSchema)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def put(self, body):
        """Set the control share and/or the salt, overriding the configuration."""
        if not body:
            raise InvalidInput("give control_share or salt", field="control_share")
        st = state()
        before = _experiment_view()
        learning_admin.write_experiment(
            st.redis, st.keys, control_share=body.get("control_share"), salt=body.get("salt")
        )
        after = _experiment_view()
        admin_change("experiment", before=before, after=after)
        return after


def _experiment_view() -> dict:
    st = state()
    stored = cast("dict[str, str]", st.redis.hgetall(st.keys.action_experiment()))
    learning = st.engage.policy.learning
    learning.apply(stored, learning.applied_at)
    overridden = sorted(k for k in ("control_share", "salt") if stored.get(k))
    return {
        "control_share": learning.control_share,
        "salt": learning.salt,
        "overridden": overridden,
    }
