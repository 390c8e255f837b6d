"""Shared marshmallow building blocks for the HTTP layer."""

from __future__ import annotations

import marshmallow as ma


class StrictSchema(ma.Schema):
    """Request bodies reject unknown fields (422) rather than ignoring them."""

    class Meta:
        unknown = ma.RAISE
