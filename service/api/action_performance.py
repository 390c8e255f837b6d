"""The schemas of ``GET /v1/actions/performance`` (the view is in ``service/api/actions.py``):
acceptance per action and experiment group with Wilson intervals, and the uplift of adaptive
over control (``recommend/engage/adaptive.py``); and of the learning's admin operations
(experiment settings, resetting an action's learning)."""

from __future__ import annotations

import marshmallow as ma

from recommend.engage.adaptive import REPORT_KEYS, RETAIN_DAYS
from service.schemas import StrictSchema


class PerformanceQuerySchema(StrictSchema):
    from_ = ma.fields.Date(
        data_key="from",
        metadata={
            "description": "First UTC day (YYYY-MM-DD), default `to` - 29 days; at most `to` "
            f"and less than {RETAIN_DAYS} days before it (422 otherwise)"
        },
    )
    to = ma.fields.Date(metadata={"description": "Last UTC day (YYYY-MM-DD), default today"})
    segment = ma.fields.String(
        validate=ma.validate.OneOf(REPORT_KEYS),
        metadata={"description": "Also report per value of this segment key (`segments`)"},
    )


class GroupPerformanceSchema(ma.Schema):
    shown = ma.fields.Integer(metadata={"description": "offers"})
    accepted = ma.fields.Integer()
    completed = ma.fields.Integer()
    acceptance_rate = ma.fields.Float(allow_none=True)
    completion_rate = ma.fields.Float(allow_none=True)
    low = ma.fields.Float(
        allow_none=True, metadata={"description": "Wilson 95% interval of the acceptance rate"}
    )
    high = ma.fields.Float(allow_none=True)


class GroupsSchema(ma.Schema):
    adaptive = ma.fields.Nested(GroupPerformanceSchema)
    control = ma.fields.Nested(GroupPerformanceSchema)


class UpliftSchema(ma.Schema):
    difference = ma.fields.Float(metadata={"description": "adaptive minus control acceptance rate"})
    low = ma.fields.Float(metadata={"description": "Newcombe 95% interval (from the Wilson ones)"})
    high = ma.fields.Float()


class ActionPerformanceSchema(ma.Schema):
    action_id = ma.fields.String()
    groups = ma.fields.Nested(GroupsSchema)
    uplift = ma.fields.Nested(UpliftSchema, allow_none=True)


class PerformanceTotalSchema(ma.Schema):
    groups = ma.fields.Nested(GroupsSchema)
    uplift = ma.fields.Nested(UpliftSchema, allow_none=True)


class DailyGroupSchema(ma.Schema):
    shown = ma.fields.Integer(metadata={"description": "impressions (and unmatched offers)"})
    accepted = ma.fields.Integer()
    acceptance_rate = ma.fields.Float(allow_none=True)


class DailySchema(ma.Schema):
    day = ma.fields.String(metadata={"description": "UTC day, YYYY-MM-DD"})
    adaptive = ma.fields.Nested(DailyGroupSchema)
    control = ma.fields.Nested(DailyGroupSchema)


class ActionSegmentValueSchema(ma.Schema):
    value = ma.fields.String(metadata={"description": "the segment value, or `other`"})
    groups = ma.fields.Nested(GroupsSchema)
    uplift = ma.fields.Nested(UpliftSchema, allow_none=True)


class ActionSegmentPerformanceSchema(ma.Schema):
    action_id = ma.fields.String()
    values = ma.fields.List(ma.fields.Nested(ActionSegmentValueSchema))


class PerformanceSchema(ma.Schema):
    from_ = ma.fields.String(data_key="from")
    to = ma.fields.String()
    control_share = ma.fields.Float()
    items = ma.fields.List(ma.fields.Nested(ActionPerformanceSchema))
    total = ma.fields.Nested(PerformanceTotalSchema)
    daily = ma.fields.List(
        ma.fields.Nested(DailySchema),
        metadata={"description": "Per day over all actions, both groups (the console's chart)"},
    )
    segment = ma.fields.String(metadata={"description": "The `segment` asked for"})
    segments = ma.fields.List(
        ma.fields.Nested(ActionSegmentPerformanceSchema),
        metadata={
            "description": "With `segment`: per action, per value (at most 50, then `other`)"
        },
    )


# -- the learning's admin operations (recommend/engage/learning_admin.py) ----------------------
class ExperimentInputSchema(StrictSchema):
    spec_extras = {"minProperties": 1}  # an empty change is a 422 (give one of them)

    control_share = ma.fields.Float(
        validate=ma.validate.Range(0, 1),
        metadata={"description": "Share of customers in the control group (0..1)"},
    )
    salt = ma.fields.String(
        validate=ma.validate.Regexp(r"^[A-Za-z0-9._:-]{1,64}$"),
        metadata={"description": "Experiment salt: a new salt draws a new control group"},
    )


class ExperimentSchema(ma.Schema):
    control_share = ma.fields.Float()
    salt = ma.fields.String()
    overridden = ma.fields.List(
        ma.fields.String(),
        metadata={"description": "The settings stored by an admin (the others are configured)"},
    )


class LearningResetSchema(ma.Schema):
    action_id = ma.fields.String()
    segment_fields = ma.fields.Integer(metadata={"description": "segment counters removed"})
    outcome_fields = ma.fields.Integer(
        metadata={"description": "per-group daily outcome counters removed"}
    )
