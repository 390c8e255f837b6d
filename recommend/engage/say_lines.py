"""The say lines of one next-best-action ranking (``recommend/engage/actions.py``): the
template for the first locale of the customer's chain that the action has, rendered in the
sandbox with the line variables of its formatting locale."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from recommend.engage import sandbox
from recommend.engage.action_catalog import say_for
from recommend.engage.greetings import variables
from recommend.engage.language import (
    DEFAULT_LOCALE,
    format_locale,
    is_fallback,
    locale_chain,
    money,
    normalise_locale,
)

log = logging.getLogger("rapport.actions")


class SayLines:
    """The say lines of one ranking: the customer's locale chain and the line variables per
    formatting locale (computed once each)."""

    def __init__(self, facts: Mapping, channel: str, requested: str | None, now: float):
        self.facts, self.channel, self.now = facts, channel, now
        self.requested = normalise_locale(requested)
        self.chain = locale_chain(self.requested)
        self._values: dict[str, dict[str, Any]] = {}

    def values(self, fmt: str) -> dict[str, Any]:
        if fmt not in self._values:
            self._values[fmt] = say_variables(self.facts, self.channel, fmt, self.now)
        return self._values[fmt]

    def line(self, action: Mapping, product: Mapping | None) -> dict[str, Any]:
        """``say`` (None without a line or when it fails), its ``locale``, ``fallback``,
        ``format_locale`` and the product's price formatted for it (``price_text``)."""
        source, say_locale = say_for(action.get("say"), self.chain)
        fmt = format_locale(say_locale or DEFAULT_LOCALE, self.requested)
        price = money(product.get("price"), product.get("currency"), fmt) if product else None
        values = dict(self.values(fmt))
        if product:
            values.update(
                product_name=product.get("name"),
                product_price=price,
                product_category=product.get("category"),
            )
        say = None
        if source:
            try:
                say = sandbox.plain(sandbox.render(source, values)) or None
            except Exception:  # a stored template must never cause a 500
                log.warning("say line of action %s failed to render", action["id"])
        return {
            "say": say,
            "locale": say_locale if say else None,
            "fallback": bool(say and say_locale and is_fallback(say_locale, self.requested)),
            "format_locale": fmt,
            "price_text": price,
        }


def say_variables(facts: Mapping, channel: str, locale: str, now: float) -> dict[str, Any]:
    """The variables of the say lines (without a product; :meth:`SayLines.line`
    adds the product's)."""
    values = variables(facts, channel, locale, now)
    traits = facts.get("traits") or {}
    values["days_since_last_purchase"] = traits.get("days_since_last_purchase")
    values.update(product_name=None, product_price=None, product_category=None)
    return values
