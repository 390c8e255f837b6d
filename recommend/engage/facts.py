"""The facts document: what greetings and next-best actions know about one customer.

Built from plain dicts (the profile, its computed traits, the latest purchase and catalog
products), so it is testable without any store. Shape (every key present; unknown values
are ``None`` or empty, never the string "None")::

    {
      "customer_id": "c-42" | None,          # None: an unknown caller
      "known": True,
      "profile": {"given_name", "family_name", "full_name", "title", "locale", "timezone",
                  "country", "tier"},          # strings or None
      "preferences": {...},                    # the profile's preferences, as stored
      "consent": {"marketing": bool, "personalization": bool, "profiling": bool},
      "traits": {...},                         # profiles/activity.py traits, as computed
      "recent_purchase": None | {"order_id", "at" (epoch s), "currency", "total",
                                 "product_id", "product_name", "category"},
      "context": {"name": str | None, "channel": str | None},
    }

``recent_purchase.product_name`` is never empty: a purchase whose products have no name
(neither in the catalog nor on the order line) keeps ``product_name: None``.
Rules (``recommend/engage/rules.py``) address this document with dotted paths.

Profile documents are those of ``profiles/document.py`` (``first_name``, ``last_name``,
``display_name``, ``loyalty_tier``; ``none`` counts as no tier); ``name`` as a string or a
``{given, family, title}`` mapping is read too. The title (Ms, Herr, Madame, Sr., Dr ...) that
gives the formal form of address comes from a ``title``/``salutation`` field on the profile or
in ``preferences.custom``; without one the formal form is the full name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

from recommend.engage.rules import to_epoch

CONSENT_PURPOSES = ("marketing", "personalization", "profiling")
_GIVEN = ("given", "given_name", "first", "first_name")
_FAMILY = ("family", "family_name", "last", "last_name", "surname")
_TITLE = ("title", "salutation", "honorific")


def empty_facts(context: Mapping | None = None) -> dict[str, Any]:
    """Facts for an unknown caller."""
    return {
        "customer_id": None,
        "known": False,
        "profile": dict.fromkeys(
            (
                "given_name",
                "family_name",
                "full_name",
                "title",
                "locale",
                "timezone",
                "country",
                "tier",
            )
        ),
        "preferences": {},
        "consent": dict.fromkeys(CONSENT_PURPOSES, False),
        "traits": {},
        "recent_purchase": None,
        "context": {
            "name": (context or {}).get("name"),
            "channel": (context or {}).get("channel"),
        },
    }


def build_facts(
    customer_id: str | None,
    profile: Mapping | None,
    traits: Mapping | None = None,
    purchase: Mapping | None = None,
    products: Mapping[str, Mapping] | None = None,
    *,
    context: Mapping | None = None,
) -> dict[str, Any]:
    """The facts document for one customer. ``products``: catalog entries by product id for
    the products of ``purchase`` (missing ones are fine)."""
    facts = empty_facts(context)
    if profile is None:
        return facts
    facts["customer_id"] = customer_id
    facts["known"] = True
    given, family, title = _name_parts(profile.get("name"), profile)
    full = " ".join(p for p in (given, family) if p) or None
    facts["profile"].update(
        given_name=given,
        family_name=family,
        full_name=full,
        title=title,
        locale=_text(profile.get("locale")),
        timezone=_text(profile.get("timezone")),
        country=_text(profile.get("country")),
        tier=_tier(profile),
    )
    prefs = profile.get("preferences")
    facts["preferences"] = dict(prefs) if isinstance(prefs, Mapping) else {}
    facts["consent"] = consent_flags(profile.get("consent"))
    facts["traits"] = dict(traits or {})
    facts["recent_purchase"] = recent_purchase(purchase, products or {})
    return facts


def _tier(profile: Mapping) -> str | None:
    tier = _text(profile.get("tier")) or _text(profile.get("loyalty_tier"))
    return None if tier is None or tier.casefold() == "none" else tier


def consent_flags(consent: Any) -> dict[str, bool]:
    """``{purpose: granted}``; accepts ``{purpose: {"granted": bool, ...}}`` or booleans."""
    out = dict.fromkeys(CONSENT_PURPOSES, False)
    if not isinstance(consent, Mapping):
        return out
    for purpose, entry in consent.items():
        if isinstance(entry, Mapping):
            out[str(purpose)] = entry.get("granted") is True
        else:
            out[str(purpose)] = entry is True
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _name_parts(name: Any, profile: Mapping) -> tuple[str | None, str | None, str | None]:
    given = family = title = None
    if isinstance(name, Mapping):
        given = next((_text(name.get(k)) for k in _GIVEN if _text(name.get(k))), None)
        family = next((_text(name.get(k)) for k in _FAMILY if _text(name.get(k))), None)
        title = next((_text(name.get(k)) for k in _TITLE if _text(name.get(k))), None)
        if not given and not family:
            display = _text(name.get("display") or name.get("full"))
            if display:
                given, _, rest = display.partition(" ")
                family = rest.strip() or None
    elif isinstance(name, str) and name.strip():
        given, _, rest = name.strip().partition(" ")
        family = rest.strip() or None
    for key in ("given_name", "first_name"):
        given = given or _text(profile.get(key))
    for key in ("family_name", "last_name"):
        family = family or _text(profile.get(key))
    if not given and not family:
        display = _text(profile.get("display_name"))
        if display:
            given, _, rest = display.partition(" ")
            family = rest.strip() or None
    # a salutation may sit on the profile or among the custom preferences
    prefs = profile.get("preferences")
    custom = prefs.get("custom") if isinstance(prefs, Mapping) else None
    for source in (profile, custom if isinstance(custom, Mapping) else {}):
        for key in _TITLE:
            title = title or _text(source.get(key))
    return given, family, title


def recent_purchase(purchase: Mapping | None, products: Mapping[str, Mapping]) -> dict | None:
    """The latest purchase, with the name of its most valuable named product."""
    if not purchase:
        return None
    lines = purchase.get("lines") or []
    best: tuple[float, str, str | None, str | None] | None = None
    first_id = None
    for line in lines:
        if not isinstance(line, Mapping):
            continue
        pid = _text(line.get("product_id"))
        if pid is None:
            continue
        first_id = first_id or pid
        product = products.get(pid) or {}
        name = _text(product.get("name")) or _text(line.get("name"))
        if not name:
            continue
        worth = _number(line.get("unit_price")) * max(_number(line.get("quantity")), 1.0)
        category = _text(product.get("category")) or _text(line.get("category"))
        if best is None or worth > best[0]:
            best = (worth, pid, name, category)
    total = _number(purchase.get("total"), None)
    if total is None and lines:
        total = sum(
            _number(line.get("unit_price")) * _number(line.get("quantity"), 1.0)
            for line in lines
            if isinstance(line, Mapping)
        )
    at = None
    for key in ("at", "time", "purchased_at", "created_at"):
        at = to_epoch(purchase.get(key))
        if at is not None:
            break
    return {
        "order_id": _text(purchase.get("order_id")),
        "at": at,
        "currency": _text(purchase.get("currency")),
        "total": total,
        "product_id": best[1] if best else first_id,
        "product_name": best[2] if best else None,
        "category": best[3] if best else None,
    }


@overload
def _number(value: Any, default: float = 0.0) -> float: ...
@overload
def _number(value: Any, default: None) -> float | None: ...
def _number(value: Any, default: float | None = 0.0) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if out == out and out not in (float("inf"), float("-inf")) else default


ProductLookup = Callable[[list[str]], Mapping[str, Mapping]]


def product_ids(purchase: Mapping | None) -> list[str]:
    """Product ids on a purchase's lines (to look up in the catalog)."""
    if not purchase:
        return []
    out = []
    for line in purchase.get("lines") or []:
        if isinstance(line, Mapping) and _text(line.get("product_id")):
            out.append(str(line["product_id"]))
    return out


class FactsLoader:
    """Gathers the facts of one customer from the stores (duck-typed so it also runs before
    every store exists): ``profiles`` a ``profiles.store.ProfileStore``; ``activity`` an
    ``ActivityStore`` (``list_purchases``) or None; ``catalog`` a ``recommend.catalog.Catalog``
    (``get_many``) or None."""

    def __init__(self, profiles: Any, activity: Any = None, catalog: Any = None):
        self.profiles = profiles
        self.activity = activity
        self.catalog = catalog

    def for_customer(self, customer_id: str, context: Mapping | None = None) -> dict[str, Any]:
        """Raises ``ProfileNotFound`` for an unknown id (an alias answers with its target)."""
        return self.load(customer_id, context)[0]

    def load(
        self, customer_id: str, context: Mapping | None = None, *, extra: Sequence[Any] = ()
    ) -> tuple[dict[str, Any], list[Any]]:
        """:meth:`for_customer` in as few round trips as the data allows, and the values of
        ``extra`` reads (``profiles.store.Reads``, queued for the resolved id).

        The profile, its traits, the newest order id and ``extra`` are one pipeline
        (``ProfileStore.get``); only a customer with purchases then reads the newest one (and
        its products from the catalog)."""
        queue_latest = getattr(self.activity, "queue_latest_order_id", None)
        reads = [queue_latest, *extra] if queue_latest else list(extra)
        profile = self.profiles.get(customer_id, extra=reads)
        values = list(profile.extra)
        if queue_latest is None:
            return self.for_profile(profile, context), values
        order_id = values.pop(0)
        purchase = self.activity.get_purchase(profile.id, order_id) if order_id else None
        return self._facts(profile, purchase, context), values

    def for_profile(self, profile: Any, context: Mapping | None = None) -> dict[str, Any]:
        """``profile``: a ``profiles.store.Profile`` (id, doc, traits)."""
        return self._facts(profile, self.latest_purchase(profile.id), context)

    def _facts(
        self, profile: Any, purchase: dict | None, context: Mapping | None
    ) -> dict[str, Any]:
        traits = profile.traits
        if not traits and self.activity is not None and hasattr(self.activity, "traits"):
            traits = self.activity.traits(profile.id)  # a profile store without activity
        products: Mapping[str, Mapping] = {}
        ids = product_ids(purchase)
        if ids and self.catalog is not None:
            products = self.catalog.get_many(ids)
        return build_facts(profile.id, profile.doc, traits, purchase, products, context=context)

    def latest_purchase(self, customer_id: str) -> dict | None:
        if self.activity is None or not hasattr(self.activity, "list_purchases"):
            return None
        items, _ = self.activity.list_purchases(customer_id, limit=1, cursor=None)
        return items[0] if items else None
