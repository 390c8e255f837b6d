"""A fixed list of hostile strings for the injection tests (tests/fuzz/test_injection.py).

Each one must be stored and returned as plain text or refused with 422; none may be executed
(template engines, Lua/Redis, SQL or NoSQL interpreters, shells, the browser)."""

from __future__ import annotations

from profiles.keys import Keys

TEMPLATE = [
    "{{7*7}}",
    "${7*7}",
    "#{7*7}",
    "<%= 7*7 %>",
    "{% for x in range(3) %}loop{% endfor %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ config.items() }}",
    "{% include '/etc/passwd' %}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
]
INJECTION = [
    "' OR '1'='1",
    "1; DROP TABLE profiles; --",
    '{"$gt": ""}',
    "$where: function() { return true }",
    "'); redis.call('FLUSHALL') --",
    "return redis.call('KEYS', '*')",
    "*\r\n$8\r\nFLUSHALL\r\n",
    "script::Runtime.exec('id')",
    "__import__('os').system('id')",
    Keys().profile("x"),  # a key name as data
    "*",
    "../../etc/passwd",
]
MARKUP = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
]
TEXT = [
    "a" * 10_000,
    "é" * 3_000,
    "\u202eevil\u202c normal",  # RTL override
    "مرحبا بالعالم",
    "👩\u200d👩\u200d👧\u200d👦🎉",
    "Z\u0334\u0321\u0322a\u0337l\u0336g\u0338o\u0335",  # combining marks
    "null\x00byte",
    "line1\r\nSet-Cookie: stolen=1",
    "%00%0d%0a",
    "\ud800",  # a lone surrogate: valid JSON, not encodable as UTF-8
    "",
    " ",
]
HOSTILE: list[str] = TEMPLATE + INJECTION + MARKUP + TEXT
