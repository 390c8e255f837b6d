"""Eligibility rules: a small declarative JSON condition format and its interpreter.

A rule is a JSON object, one of::

    {"all": [rule, ...]}                      every child holds (an empty list holds)
    {"any": [rule, ...]}                      at least one child holds (an empty list does not)
    {"not": rule}                             the child does not hold
    {"field": "traits.order_count", "op": ">=", "value": 3}
    {"days_since": "traits.last_purchase_at", "op": ">", "value": 45}

A leaf may carry ``"reason": "text"`` to replace the generated explanation; ``{actual}`` in it
is replaced by the value found (plain substitution, not ``str.format``).

Fields are dotted paths into the facts document (see ``recommend/engage/actions.py``): ``traits.*``,
``preferences.*``, ``consent.<purpose>`` (a boolean: granted), ``profile.*`` (tier, locale,
country, timezone) and ``context.*`` (name and channel of the request).

Operators: ``==  !=  <  <=  >  >=`` (numbers, or strings with strings), ``in`` / ``not_in``
(value is a list), ``exists`` / ``missing`` (no value), ``contains`` (the field is a list or
a string, or a mapping whose keys are tested, and holds the value). ``days_since`` reads an
epoch-seconds or ISO-8601 time and compares the whole days elapsed since then with the
injected clock; it supports the six comparison operators.

Evaluation never raises on data: a missing field or a type mismatch makes the leaf false
(except ``missing``/``!=``/``not_in``, which hold for a missing field). Validation happens on
save and names the path of the bad node, e.g. ``rules.all.1.op``. Nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeGuard

from recommend.errors import InvalidRule

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
OPERATORS = (*COMPARISONS, "in", "not_in", "exists", "missing", "contains")
ROOTS = ("traits", "preferences", "consent", "profile", "context")
MAX_DEPTH = 8
MAX_NODES = 64
MAX_LIST = 100
MAX_STRING = 200
DAY = 86400.0

_MISSING = object()
_LEAF_KEYS = {"field", "op", "value", "reason"}
_DAYS_KEYS = {"days_since", "op", "value", "reason"}

# Human labels for well-known fields (generated reasons); other fields use their path.
LABELS = {
    "traits.order_count": "orders",
    "traits.total_spend": "total spend",
    "traits.days_since_last_purchase": "days since last purchase",
    "traits.favourite_categories": "favourite categories",
    "traits.open_support_contacts": "open support contacts",
    "preferences.categories": "preferred categories",
    "profile.tier": "tier",
    "profile.country": "country",
    "profile.locale": "locale",
}


# -- validation ---------------------------------------------------------------------------
def validate(rule: Any, path: str = "rules") -> None:
    """Raise :class:`InvalidRule` with ``field`` set to the path of the first bad node."""
    counter = [0]
    _check(rule, path, 0, counter)


def _fail(path: str, message: str) -> None:
    raise InvalidRule(f"{path}: {message}", field=path)


def _check(node: Any, path: str, depth: int, counter: list[int]) -> None:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        _fail(path, f"a rule may have at most {MAX_NODES} nodes")
    if depth > MAX_DEPTH:
        _fail(path, f"rules nest at most {MAX_DEPTH} levels deep")
    if not isinstance(node, Mapping):
        _fail(path, "a rule is an object")
    if len(node) == 1 and ("all" in node or "any" in node):
        key = "all" if "all" in node else "any"
        children = node[key]
        if not isinstance(children, list):
            _fail(f"{path}.{key}", f"'{key}' takes a list of rules")
        for i, child in enumerate(children):
            _check(child, f"{path}.{key}.{i}", depth + 1, counter)
        return
    if len(node) == 1 and "not" in node:
        _check(node["not"], f"{path}.not", depth + 1, counter)
        return
    if "field" in node:
        _check_leaf(node, path, "field", _LEAF_KEYS)
        return
    if "days_since" in node:
        _check_leaf(node, path, "days_since", _DAYS_KEYS)
        return
    _fail(path, "expected one of all, any, not, field or days_since")


def _check_leaf(node: Mapping, path: str, kind: str, allowed: set[str]) -> None:
    unknown = sorted(set(node) - allowed)
    if unknown:
        _fail(f"{path}.{unknown[0]}", f"unknown key {unknown[0]!r}")
    _check_field(node[kind], f"{path}.{kind}")
    op = node.get("op")
    ops = COMPARISONS if kind == "days_since" else OPERATORS
    if op not in ops:
        _fail(f"{path}.op", f"op must be one of {', '.join(ops)}")
    reason = node.get("reason")
    if reason is not None and (not isinstance(reason, str) or not 0 < len(reason) <= MAX_STRING):
        _fail(f"{path}.reason", f"reason is a string of 1 to {MAX_STRING} characters")
    vpath = f"{path}.value"
    if op in ("exists", "missing"):
        if "value" in node:
            _fail(vpath, f"'{op}' takes no value")
        return
    if "value" not in node:
        _fail(vpath, f"'{op}' needs a value")
    value = node["value"]
    if kind == "days_since":
        if not _is_number(value) or value < 0:
            _fail(vpath, "days_since compares with a number of days >= 0")
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not 0 < len(value) <= MAX_LIST:
            _fail(vpath, f"'{op}' takes a list of 1 to {MAX_LIST} values")
        for i, item in enumerate(value):
            _check_scalar(item, f"{vpath}.{i}")
    elif op in ("<", "<=", ">", ">="):
        if not (_is_number(value) or isinstance(value, str)):
            _fail(vpath, f"'{op}' compares with a number or a string")
        _check_scalar(value, vpath)
    else:
        _check_scalar(value, vpath)


def _check_field(field: Any, path: str) -> None:
    if not isinstance(field, str) or not 0 < len(field) <= MAX_STRING:
        _fail(path, "a field is a dotted path such as 'traits.order_count'")
    parts = field.split(".")
    if parts[0] not in ROOTS or len(parts) < 2 or not all(parts):
        _fail(path, f"a field starts with one of {', '.join(ROOTS)} and names a key in it")
    if any(p.startswith("_") for p in parts):
        _fail(path, "field names may not start with an underscore")


def _check_scalar(value: Any, path: str) -> None:
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            _fail(path, f"strings are at most {MAX_STRING} characters")
    elif value is not None and not isinstance(value, bool) and not _is_number(value):
        _fail(path, "values are strings, numbers, booleans or null")


def _is_number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float, not a bool (TypeGuard, not TypeIs: inf is a float too)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# -- evaluation ---------------------------------------------------------------------------
def evaluate(rule: Mapping | None, facts: Mapping, now: float) -> tuple[bool, list[str]]:
    """Whether ``rule`` holds for ``facts`` at ``now`` (epoch s), and a reason per satisfied
    leaf (leaves under ``not`` give none). A missing rule holds with no reasons."""
    if not rule:
        return True, []
    reasons: list[str] = []
    ok = _holds(rule, facts, now, reasons)
    return ok, (reasons if ok else [])


def _holds(node: Mapping, facts: Mapping, now: float, reasons: list[str] | None) -> bool:
    if "all" in node:
        collected: list[str] = []
        for child in node["all"]:
            if not _holds(child, facts, now, collected):
                return False
        if reasons is not None:
            reasons.extend(collected)
        return True
    if "any" in node:
        hit = False
        for child in node["any"]:
            if _holds(child, facts, now, reasons):
                hit = True
        return hit
    if "not" in node:
        return not _holds(node["not"], facts, now, None)
    if "days_since" in node:
        return _eval_days(node, facts, now, reasons)
    return _eval_leaf(node, facts, reasons)


def lookup(facts: Mapping, path: str) -> Any:
    """The value at a dotted path, or ``_MISSING`` (None counts as missing)."""
    current: Any = facts
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return _MISSING if current is None else current


def _eval_leaf(node: Mapping, facts: Mapping, reasons: list[str] | None) -> bool:
    field, op = node["field"], node["op"]
    actual = lookup(facts, field)
    value = node.get("value")
    ok = _apply(op, actual, value)
    if ok and reasons is not None:
        reasons.append(_reason(node, field, op, actual, value))
    return ok


def _apply(op: str, actual: Any, value: Any) -> bool:
    if op == "exists":
        return actual is not _MISSING
    if op == "missing":
        return actual is _MISSING
    if actual is _MISSING:
        return op in ("!=", "not_in")
    if op == "==":
        return _equal(actual, value)
    if op == "!=":
        return not _equal(actual, value)
    if op == "in":
        return any(_equal(actual, v) for v in value)
    if op == "not_in":
        return not any(_equal(actual, v) for v in value)
    if op == "contains":
        if isinstance(actual, str):
            return isinstance(value, str) and value.casefold() in actual.casefold()
        if isinstance(actual, Mapping):
            return any(_equal(k, value) for k in actual)
        if isinstance(actual, list | tuple | set):
            return any(_equal(item, value) for item in actual)
        return False
    return _order(op, actual, value)


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _order(op: str, actual: Any, value: Any) -> bool:
    if _is_number(actual) and _is_number(value):
        pass
    elif isinstance(actual, str) and isinstance(value, str):
        pass
    else:
        return False
    if op == "<":
        return actual < value
    if op == "<=":
        return actual <= value
    if op == ">":
        return actual > value
    return actual >= value


def to_epoch(value: Any) -> float | None:
    """Epoch seconds from a number or an ISO-8601 string (naive means UTC); else None."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


def _eval_days(node: Mapping, facts: Mapping, now: float, reasons: list[str] | None) -> bool:
    field = node["days_since"]
    at = to_epoch(lookup(facts, field))
    if at is None:
        return False
    days = int(max(0.0, now - at) // DAY)
    op, value = node["op"], node["value"]
    ok = (days == value) == (op == "==") if op in ("==", "!=") else _order(op, days, value)
    if ok and reasons is not None:
        if "reason" in node:
            reasons.append(node["reason"].replace("{actual}", str(days)))
        else:
            what = _days_label(field)
            reasons.append(f"{what} {days} day{'s' if days != 1 else ''} ago")
    return ok


def _days_label(field: str) -> str:
    name = field.rsplit(".", 1)[-1]
    if name.endswith("_at"):
        name = name[:-3]
    return name.replace("_", " ")


def _reason(node: Mapping, field: str, op: str, actual: Any, value: Any) -> str:
    shown = "" if actual is _MISSING else _text(actual)
    if "reason" in node:
        return node["reason"].replace("{actual}", shown)
    name = field.rsplit(".", 1)[-1]
    label = LABELS.get(field, field)
    root = field.split(".", 1)[0]
    if op == "contains" and field == "traits.favourite_categories":
        return f"bought in {value} category"
    if op == "contains" and field == "preferences.categories":
        return f"interested in {value}"
    if op == "contains":
        return f"{label} include {_text(value)}"
    if op == "exists":
        return f"{label} is known ({shown})" if shown else f"{label} is known"
    if op == "missing":
        return f"no {label} on record"
    if root == "consent" and op == "==":
        return f"{name} consent {'granted' if actual is True else 'not granted'}"
    if op in ("==", "in"):
        return f"{label} is {shown}"
    if op in ("!=", "not_in"):
        return f"{label} is {shown or 'unknown'}, not {_text(value)}"
    if field == "traits.order_count":
        return f"{shown} order{'s' if actual != 1 else ''}"
    return f"{label} is {shown} ({op} {_text(value)})"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(str(k) for k in value)
    return str(value)
