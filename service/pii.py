"""PII masking for keys without ``pii:read``: by field first, free text scanned with kept parsers.

A JSON response is walked once (:func:`mask_pii`). Each value is treated by the key it sits
under (a list inherits its key), from one declared list, :data:`PII_FIELDS`, beside
:data:`ID_FIELDS`:

- **identities** (``email``/``emails``, ``phone``/``phones``) are masked whole:
  ``jane.doe@example.com`` -> ``j***@example.com`` (the domain stays), ``+436641234567`` ->
  ``+43********67`` (country code and last two digits stay);
- **identity claims** (``email:…``, ``phone:…`` in ``attached``, ``identities_released`` …):
  the value after the kind is masked as that kind; ``ext:…`` claims are ids and stay;
- **names** (``first_name``, ``last_name``, ``display_name``; a greeting's ``given_name``,
  ``family_name``, ``full_name``) become ``J***`` when the deployment declares names PII
  (``RAPPORT_PII_NAMES=1``); otherwise they are free text;
- **ids** (``id``, ``*_id``, ``*_ids``, cursors, ...) are never rewritten, so a client can use
  them again: a PII-shaped id (``ord-jane@example.com``) is shown as it was stored;
- **everything else** (notes, descriptions, event properties, problem details, object keys)
  is free text: phone numbers are found with phonenumbers' ``PhoneNumberMatcher`` for every
  region of ``RAPPORT_PII_REGIONS`` (national spellings of those regions, international ones
  from anywhere), emails with a scan that covers at least the grammar
  ``profiles.document.normalise_email`` accepts, plus quoted local parts and Unicode.

The same text scan redacts log lines (``service/logs.py``, ``gunicorn.conf.py``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import phonenumbers

DEFAULT_REGIONS = "AT,DE,GB,US,FR,ES"

EMAIL, PHONE, CLAIM, NAME, TEXT = "email", "phone", "claim", "name", "text"

# JSON keys whose values hold PII, and how each is masked (service/api/*.py response schemas,
# profiles/document.py PROFILE_FIELDS). Keys not listed here and not ids are free text too.
PII_FIELDS: Mapping[str, str] = {
    "email": EMAIL,
    "emails": EMAIL,
    "phone": PHONE,
    "phones": PHONE,
    # identity claims, "kind:value" (profiles.document.identity_key)
    "attached": CLAIM,
    "identities_released": CLAIM,
    "returned_identities": CLAIM,
    "not_restored": CLAIM,
    # names: masked whole with RAPPORT_PII_NAMES=1, else scanned as free text
    "first_name": NAME,
    "last_name": NAME,
    "display_name": NAME,
    "given_name": NAME,  # a greeting's facts (recommend/engage/facts.py)
    "family_name": NAME,
    "full_name": NAME,
    # free text known to carry what people type
    "note": TEXT,
    "description": TEXT,
    "properties": TEXT,
    "say": TEXT,
    "text": TEXT,
    "html": TEXT,
    "facts": TEXT,
    "variables": TEXT,
    "detail": TEXT,
    "message": TEXT,
    "instance": TEXT,
}

# Keys whose values are identifiers: never rewritten. Besides these, every key ending in
# ``_id`` or ``_ids`` (customer_id, order_id, product_id, merge_id, feedback_id, message_id,
# request_id, key_id, external_ids, erased_ids, merged_ids, ...).
ID_FIELDS: frozenset[str] = frozenset(
    {"id", "ids", "cursor", "next_cursor", "missing", "etag", "version", "manifest_sha256"}
)


def parse_regions(text: str) -> tuple[str, ...]:
    """``"AT, de"`` -> ``("AT", "DE")``; ValueError naming a region phonenumbers does not know."""
    regions = tuple(dict.fromkeys(r.strip().upper() for r in text.split(",") if r.strip()))
    unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValueError(f"unknown region {', '.join(unknown)} (ISO 3166 alpha-2, e.g. AT,DE)")
    return regions


# -- emails --------------------------------------------------------------------------------------
# The validator's local-part characters (profiles/document.py _EMAIL_LOCAL) and dots; the scan
# also takes Unicode letters and digits (str.isalnum) and quoted local parts ("john doe"@...).
_LOCAL_PUNCT = frozenset("!#$%&'*+/=?^_`{|}~.-")
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_LABEL}|\[[^\]\s\\]{{1,64}}\]")
_MAX_LOCAL = 256


def _local_start(text: str, at: int) -> int:
    """Where the local part ending at ``text[at]`` (the ``@``) starts; ``at`` when none."""
    if at > 0 and text[at - 1] == '"':
        opening = text.rfind('"', max(0, at - _MAX_LOCAL), at - 1)
        if opening >= 0:
            return opening
    i = at
    while i > 0 and at - i < _MAX_LOCAL and (text[i - 1].isalnum() or text[i - 1] in _LOCAL_PUNCT):
        i -= 1
    return i


def _masked_local(local: str) -> str:
    """``o'reilly`` -> ``o***``; leading punctuation stays (``'alice`` -> ``'a***``)."""
    body = local.strip('"')
    lead = len(body) - len(body.lstrip("".join(_LOCAL_PUNCT)))
    first = body[lead : lead + 1]
    return f"{body[:lead]}{first}***"


def mask_emails(text: str) -> str:
    """Every ``local@domain`` in ``text`` with its local part masked, the domain kept."""
    if "@" not in text:
        return text
    out, pos = [], 0
    at = text.find("@")
    while at >= 0:
        start = _local_start(text, at)
        domain = _DOMAIN.match(text, at + 1)
        start = max(start, pos)
        if start < at and domain:
            out += [text[pos:start], _masked_local(text[start:at]), "@", domain.group()]
            pos = domain.end()
        at = text.find("@", max(at + 1, pos))
    out.append(text[pos:])
    return "".join(out)


def mask_email_value(value: str) -> str:
    """An email field's value, masked whole: ``j***@example.com`` (``j***`` without a domain)."""
    local, at, domain = value.rpartition("@")
    if not at:
        return _masked_local(value) if value else value
    return f"{_masked_local(local)}@{domain}"


# -- phone numbers -------------------------------------------------------------------------------
_DIGITS = str.maketrans("", "", "0123456789")
# What the old mask covered, kept for numbers the matcher finds invalid: +CC and 6-15 digits.
_COMPACT = re.compile(r"\+(\d{6,15})(?!\d)")
_MIN_DIGITS = 6  # fewer digits than this cannot be a phone number of any region we name


def _masked_number(number: phonenumbers.PhoneNumber) -> str:
    national = str(number.national_number)
    return f"+{number.country_code}{'*' * max(0, len(national) - 2)}{national[-2:]}"


def _digits(text: str) -> int:
    """How many digits ``text`` holds (any script's: phonenumbers reads them all)."""
    if text.isascii():
        return len(text) - len(text.translate(_DIGITS))
    return sum(1 for ch in text if ch.isdecimal())


def _masked_compact(match: re.Match) -> str:
    digits = match[1]
    return f"+{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"


_E164 = re.compile(r"\+(\d{7,15})")
_COUNTRY_CODES = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def mask_phone_value(value: str) -> str:
    """A phone field's value (E.164 as stored), masked whole: ``+43********67``."""
    e164 = _E164.fullmatch(value)
    if e164:  # country codes are prefix-free: the first 1-3 digits that are one
        digits = e164[1]
        size = next((n for n in (1, 2, 3) if int(digits[:n]) in _COUNTRY_CODES), 2)
        return f"+{digits[:size]}{'*' * (len(digits) - size - 2)}{digits[-2:]}"
    try:
        return _masked_number(phonenumbers.parse(value, None))
    except phonenumbers.NumberParseException:
        digits = _digits(value)
        return "***" + (value[-2:] if digits >= _MIN_DIGITS else "") if value else value


# Where a phone number might be: digits and the separators phonenumbers allows between them
# (its _VALID_PUNCTUATION but "x"). Only a run of 6+ digits (not an ISO date) is handed to
# PhoneNumberMatcher, with one character of context either side (its letter checks need it).
_SEPARATORS = (
    "\\-\u2010-\u2015\u2212\u30fc\uff0d-\uff0f\\s\u00ad\u200b\u2060"
    "()\uff08\uff09\uff3b\uff3d.\\[\\]/~\u2053\u223c\uff5e"
)
_CANDIDATE = re.compile(rf"[+\uff0b(\uff08]?\d(?:[\d{_SEPARATORS}]*\d)?")
_ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")
# Longer runs of digits and separators are not parsed (PhoneNumberMatcher's cost grows with
# them): their digits are all masked. A few numbers in a row ("0664 1234567 / 01 234 5678")
# fit; a table of figures does not.
_MAX_CANDIDATE = 64
_DIGIT = re.compile(r"\d")
# Candidates no configured region reads as a valid number (SKUs, order numbers): not PII by
# this module's own test, so remembered to spare the matcher next time (bounded).
_NOT_PHONES: dict[tuple[tuple[str, ...], str], None] = {}
_MAX_NOT_PHONES = 50_000


def _candidates(text: str) -> list[tuple[int, int]]:
    return [
        m.span()
        for m in _CANDIDATE.finditer(text)
        if _digits(m.group()) >= _MIN_DIGITS and not _ISO_DATE.fullmatch(m.group())
    ]


def _phone_spans(text: str, regions: tuple[str, ...]) -> list[tuple[int, int, str]]:
    """``(start, end, mask)`` of each phone number in ``text``. Each candidate is read with
    the regions in order, up to the first that finds a number in it (that reading names the
    mask: its country code)."""
    found: list[tuple[int, int, str]] = []
    for start, end in _candidates(text):
        if end - start > _MAX_CANDIDATE:  # not one number: masked whole, not parsed
            found.append((start, end, _DIGIT.sub("*", text[start:end])))
            continue
        offset = max(0, start - 1)
        piece = text[offset : end + 1]
        if (regions, piece) in _NOT_PHONES:
            continue
        spans = []
        for region in regions:
            for match in phonenumbers.PhoneNumberMatcher(piece, region):
                mask = _masked_number(match.number)
                spans.append((offset + match.start, offset + match.end, mask))
            if spans:
                break
        if not spans:
            if len(_NOT_PHONES) >= _MAX_NOT_PHONES:
                _NOT_PHONES.clear()  # start over rather than grow
            _NOT_PHONES[(regions, piece)] = None
        found += spans
    return found


# Object keys seen without PII (schema names, mostly), so the walk skips scanning them again.
_CLEAN_KEYS: set[str] = set()
_MAX_CLEAN_KEYS = 10_000


def _clean(text: str) -> bool:
    """Too short or too digit-poor to hold an email or phone number: nothing to scan."""
    return "@" not in text and (len(text) < _MIN_DIGITS or _digits(text) < _MIN_DIGITS)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# -- the masker ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Masker:
    """How this deployment masks: the phone regions of free text, and whether names are PII."""

    regions: tuple[str, ...] = parse_regions(DEFAULT_REGIONS)
    names: bool = False

    @classmethod
    def from_config(cls, config: Any) -> Masker:
        masker = cls(parse_regions(config.pii_regions), bool(config.pii_names))
        masker.text("123456")  # no region's number: loads every region's metadata now
        return masker

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Masker:
        """From ``RAPPORT_PII_REGIONS``/``RAPPORT_PII_NAMES`` (gunicorn's access log has no app)."""
        environ = os.environ if environ is None else environ
        regions = environ.get("RAPPORT_PII_REGIONS") or DEFAULT_REGIONS
        return cls(parse_regions(regions), environ.get("RAPPORT_PII_NAMES", "0") == "1")

    def text(self, text: str) -> str:
        """Free text with every email and phone number in it masked."""
        if _clean(text):
            return text
        text = mask_emails(text)
        if _digits(text) < _MIN_DIGITS:
            return text
        spans = _phone_spans(text, self.regions or ("ZZ",))
        for start, end, mask in reversed(spans):
            text = f"{text[:start]}{mask}{text[end:]}"
        return _COMPACT.sub(_masked_compact, text) if "+" in text else text

    def value(self, value: Any, kind: str = TEXT) -> Any:
        """A JSON value masked as ``kind`` (its key's, :data:`PII_FIELDS`); containers walked."""
        if isinstance(value, str):
            return self._string(value, kind)
        if isinstance(value, list):
            return [self.value(v, kind) for v in value]
        if isinstance(value, dict):
            return self._object(value)
        return value

    def _object(self, doc: dict) -> dict:
        # The hot loop of a list response: scalars and plain strings without an ``@`` or six
        # digits are kept without a call; keys seen clean before are not scanned again.
        out = {}
        for key, item in doc.items():
            if key not in _CLEAN_KEYS:
                key = self._key(key)
            if item is None or isinstance(item, (bool, int, float)):
                out[key] = item
                continue
            kind = PII_FIELDS.get(key, TEXT)
            plain = isinstance(item, str)
            if (plain or _strings(item)) and (key in ID_FIELDS or key.endswith(("_id", "_ids"))):
                out[key] = item
            elif plain and kind == TEXT and _clean(item):
                out[key] = item
            else:
                out[key] = self.value(item, kind)
        return out

    def _key(self, key: str) -> str:
        masked = self.text(key)
        if masked == key and len(_CLEAN_KEYS) < _MAX_CLEAN_KEYS:
            _CLEAN_KEYS.add(key)  # no email or phone in it: safe to remember
        return masked

    def _string(self, value: str, kind: str) -> str:
        if kind == EMAIL:
            return mask_email_value(value)
        if kind == PHONE:
            return mask_phone_value(value)
        if kind == CLAIM:
            claim, sep, rest = value.partition(":")
            if sep and claim in (EMAIL, PHONE):
                return f"{claim}:{self._string(rest, claim)}"
            return value  # ext:system:id is an id
        if kind == NAME and self.names:
            return f"{value[:1]}***" if value else value
        return self.text(value)


DEFAULT = Masker()


_URL_PARTS = re.compile(r"([/?&=;])")


def redact(text: str, masker: Masker | None = None) -> str:
    """A log message, URL, path or query string with each path segment and query value that
    holds an email or phone number masked (percent-decoded first): ``/v1/profiles/a***@x.com``.
    Split at ``/ ? & = ;`` first, which the email grammar allows inside a local part."""
    masker = masker or DEFAULT
    if "@" not in text and "%40" not in text and _digits(text) < _MIN_DIGITS:
        return text
    parts = _URL_PARTS.split(text)
    for i in range(0, len(parts), 2):
        plain = unquote(parts[i]) if "%" in parts[i] else parts[i]
        masked = masker.text(plain)
        if masked != plain:
            parts[i] = masked
    return "".join(parts)


def mask_text(text: str, masker: Masker | None = None) -> str:
    """Free text masked: ``jane.doe@example.com`` -> ``j***@example.com``, ``+43 664 1234567``
    -> ``+43********67``."""
    return (masker or DEFAULT).text(text)


def mask_pii(value: Any, masker: Masker | None = None) -> Any:
    """A JSON document as a key without ``pii:read`` sees it (see the module docstring)."""
    return (masker or DEFAULT).value(value)
