"""Every problem type the code can answer is listed in docs/errors.md, and no two name one kind."""

from __future__ import annotations

import re
from pathlib import Path

import redis

from core.errors import InvalidInput, RapportError
from service import create_app
from service.errors import MALFORMED_TYPE, VALIDATION_TYPE, MalformedRequest, problem_type

ROOT = Path(__file__).resolve().parents[2]
TYPE = re.compile(r"urn:rapport:problem:[a-z][a-z-]*")


def _subclasses(cls: type) -> list[type]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _subclasses(sub)
    return out


def _documented() -> set[str]:
    return set(TYPE.findall((ROOT / "docs" / "errors.md").read_text()))


def test_every_problem_type_in_the_code_is_documented():
    create_app({"testing": True}, redis=redis.Redis(port=1))  # imports every room's errors
    written = set()
    for path in [*ROOT.joinpath("service").rglob("*.py"), ROOT / "gunicorn.conf.py"]:
        written |= set(TYPE.findall(path.read_text()))
    domain = {problem_type(cls) for cls in _subclasses(RapportError)}
    assert len(domain) > 20  # the rooms' error classes were found
    missing = sorted((written | domain) - _documented())
    assert not missing, f"add these problem types to docs/errors.md: {missing}"


def test_every_invalid_input_is_the_validation_type():
    kinds = {problem_type(cls) for cls in _subclasses(InvalidInput)}
    assert kinds == {VALIDATION_TYPE}
    assert problem_type(MalformedRequest) == MALFORMED_TYPE
    assert "urn:rapport:problem:invalid-input" not in _documented()
