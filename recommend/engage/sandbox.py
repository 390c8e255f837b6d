"""The template sandbox shared by greetings and action lines (admin-written Jinja2).

Two layers:

* on save (:func:`validate`): syntax, length, only the documented variables, only
  ``ALLOWED_FILTERS``, no calls, no ``*``/``**`` (string repetition), no loops, no
  include/import/extends/macro, and no attribute, item or variable name starting with ``_``
  (``{{ ''.__class__ }}`` is refused). The template is then test-rendered with full and empty
  values.
* at render (:func:`render`): an ``ImmutableSandboxedEnvironment`` with autoescaping,
  ``StrictUndefined`` (every documented variable is always passed, None when unknown, so an
  undefined value is a blocked attribute or a mistake and raises, ``SecurityError`` for an
  unsafe one) and no globals. The render-time rules do not trust the save-time check (a
  branch the test render never took, a template stored before a rule existed): no call at
  all, no ``%`` formatting, ``*`` and ``**`` of a string or a list, ``+`` that would build a
  text longer than ``MAX_OUTPUT_CHARS``, no printed value longer than that, and the output
  is streamed and stopped past it. So ``{{ '%999999999s' % name }}`` costs nothing in any
  branch. Callers catch any failure and fall back.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from recommend.errors import InvalidTemplate

MAX_TEMPLATE_CHARS = 2000
MAX_OUTPUT_CHARS = 1000
ALLOWED_FILTERS = frozenset(
    {"upper", "lower", "title", "capitalize", "trim", "default", "d", "e", "escape", "length"}
)
_FORBIDDEN_NODES: dict[type, str] = {
    nodes.Call: "calls are not allowed",
    nodes.Mod: "'%' (string formatting) is not allowed",
    nodes.Mul: "'*' is not allowed",
    nodes.Pow: "'**' is not allowed",
    nodes.Include: "include is not allowed",
    nodes.Import: "import is not allowed",
    nodes.FromImport: "import is not allowed",
    nodes.Extends: "extends is not allowed",
    nodes.Macro: "macros are not allowed",
    nodes.CallBlock: "call blocks are not allowed",
    nodes.For: "loops are not allowed",
}


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox with the amplifying operations refused while rendering (see above)."""

    intercepted_binops = frozenset({"%", "*", "**", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        text = (str, list)
        if operator == "%" or (
            operator in ("*", "**") and (isinstance(left, text) or isinstance(right, text))
        ):
            raise SecurityError(f"'{operator}' on text is not allowed in templates")
        if operator == "+" and isinstance(left, str) and isinstance(right, str):
            if len(left) + len(right) > MAX_OUTPUT_CHARS:
                raise SecurityError("the text would be longer than a rendered template may be")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        raise SecurityError("calls are not allowed in templates")


def _bounded(value: Any) -> Any:
    """Every printed value: refused past ``MAX_OUTPUT_CHARS`` (``finalize``)."""
    if isinstance(value, str) and len(value) > MAX_OUTPUT_CHARS:
        raise SecurityError("a value is longer than a rendered template may be")
    return value


def _environment() -> BoundedSandbox:
    # StrictUndefined: every documented variable is always passed (None when unknown), so an
    # undefined value is a mistake or a blocked attribute; printing it raises (SecurityError
    # for an unsafe attribute) instead of rendering an empty string. No globals (range, ...).
    env = BoundedSandbox(
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        finalize=_bounded,
    )
    env.globals.clear()
    return env


ENV = _environment()


# -- validation -----------------------------------------------------------------------------
def validate(
    source: Any,
    field: str,
    allowed: Mapping[str, str],
    sample: Mapping[str, Any] | None = None,
) -> None:
    """Refuse a template that is not safe and simple; raises :class:`InvalidTemplate`.
    ``allowed``: the documented variables; ``sample``: typed values for a test render (the
    others get a 40-character string)."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidTemplate("a template is a non-empty string", field=field)
    if len(source) > MAX_TEMPLATE_CHARS:
        raise InvalidTemplate(f"a template is at most {MAX_TEMPLATE_CHARS} characters", field=field)
    try:
        ast = ENV.parse(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise InvalidTemplate(f"template syntax error{where}: {exc}", field=field) from None
    for node in ast.find_all(nodes.Node):
        _check_node(node, field)
    loaded = {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load"}
    stored = {n.name for n in ast.find_all(nodes.Name) if n.ctx != "load"}
    unknown = sorted((meta.find_undeclared_variables(ast) | (loaded - stored)) - set(allowed))
    if unknown:
        raise InvalidTemplate(
            f"unknown variable(s) {', '.join(unknown)}; documented: {', '.join(allowed)}",
            field=field,
        )
    empty = dict.fromkeys(allowed)
    full = {**dict.fromkeys(allowed, "x" * 40), **(sample or {})}
    for sample in (full, empty):
        try:
            out = ENV.from_string(source).render(sample)
        except Exception as exc:  # any failure refuses the template
            raise InvalidTemplate(f"template fails to render: {exc}", field=field) from None
        if len(out) > MAX_OUTPUT_CHARS:
            raise InvalidTemplate(
                f"the rendered text is longer than {MAX_OUTPUT_CHARS} characters", field=field
            )


def _check_node(node: nodes.Node, field: str) -> None:
    for kind, message in _FORBIDDEN_NODES.items():
        if isinstance(node, kind):
            raise InvalidTemplate(f"{message} in templates", field=field)
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        raise InvalidTemplate(f"access to attribute {node.attr!r} is not allowed", field=field)
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
        and node.arg.value.startswith("_")
    ):
        raise InvalidTemplate(f"access to item {node.arg.value!r} is not allowed", field=field)
    if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
        allowed = ", ".join(sorted(ALLOWED_FILTERS))
        raise InvalidTemplate(
            f"filter {node.name!r} is not allowed; allowed: {allowed}", field=field
        )
    if isinstance(node, nodes.Name) and node.name.startswith("_"):
        raise InvalidTemplate(f"name {node.name!r} is not allowed", field=field)


def template_version(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:12]


class _Compiled:
    """A small LRU of compiled templates by source hash (sources are few and change rarely)."""

    def __init__(self, size: int = 256):
        self.size = size
        self.items: OrderedDict[str, Any] = OrderedDict()
        self.lock = threading.Lock()  # gunicorn may run threaded workers

    def get(self, source: str):
        key = hashlib.sha256(source.encode()).hexdigest()
        with self.lock:
            template = self.items.get(key)
            if template is not None:
                self.items.move_to_end(key)
                return template
        template = ENV.from_string(source)  # compile outside the lock; may raise
        with self.lock:
            self.items[key] = template
            if len(self.items) > self.size:
                self.items.popitem(last=False)
        return template


COMPILED = _Compiled()


def render(source: str, values: Mapping[str, Any]) -> str:
    """Render in the sandbox; raises on any failure (callers fall back). The output is
    streamed and the render stops as soon as it passes ``MAX_OUTPUT_CHARS``."""
    parts: list[str] = []
    size = 0
    for part in COMPILED.get(source).generate(values):
        size += len(part)
        if size > MAX_OUTPUT_CHARS:
            raise ValueError("rendered text too long")
        parts.append(part)
    return "".join(parts)


def plain(html: str) -> str:
    """The text of an autoescaped render, whitespace collapsed; no-break spaces inside stay
    (Babel puts one between an amount and its currency)."""
    return re.sub(r"[ \t\r\n\f\v]+", " ", Markup(html).unescape()).strip()


_USED: dict[str, frozenset[str]] = {}


def used_variables(source: str, allowed: Mapping[str, str]) -> frozenset[str]:
    """Documented variables a template references (cached per source)."""
    key = template_version(source)
    found = _USED.get(key)
    if found is None:
        try:
            found = frozenset(meta.find_undeclared_variables(ENV.parse(source)) & set(allowed))
        except TemplateError:
            found = frozenset()
        if len(_USED) > 1024:
            _USED.clear()
        _USED[key] = found
    return found
