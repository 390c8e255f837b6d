"""Greetings: each fact and its absence, every shipped locale, fallback, the sandbox, time zones."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.channels import CHANNELS
from core.errors import InvalidInput
from profiles.keys import Keys
from recommend.engage.facts import build_facts, empty_facts
from recommend.engage.greeting_defaults import DEFAULT_TEMPLATES
from recommend.engage.greetings import (
    Greeter,
    GreetingTemplates,
    locale_chain,
    time_of_day,
    validate_template,
)
from recommend.errors import InvalidTemplate, TemplateNotFound

# 2026-11-22 08:30 UTC: 09:30 in Berlin (morning)
NOW = datetime(2026, 11, 22, 8, 30, tzinfo=UTC).timestamp()
DAY = 86400.0


@pytest.fixture
def templates(redis_client):
    return GreetingTemplates(redis_client, Keys("rp"), lambda: NOW)


def greeter(templates, now=NOW):
    return Greeter(templates, lambda: now)


def profile(**over):
    base = {
        "name": {"given": "Anna", "family": "Schmidt", "title": "Frau"},
        "locale": "en",
        "timezone": "Europe/Berlin",
        "tier": "gold",
        "consent": {"marketing": {"granted": True, "at": NOW, "source": "web"}},
    }
    base.update(over)
    return base


PURCHASE = {
    "order_id": "o-1",
    "at": NOW - 3 * DAY,
    "currency": "EUR",
    "lines": [
        {"product_id": "p-cheap", "quantity": 1, "unit_price": "2.50"},
        {"product_id": "p-kettle", "quantity": 1, "unit_price": "37.40"},
    ],
}
PRODUCTS = {"p-kettle": {"name": "Kettle", "category": "Home"}, "p-cheap": {"name": "Sponge"}}


def facts(prof=None, traits=None, purchase=None, products=None):
    return build_facts(
        "c-1",
        prof if prof is not None else profile(),
        traits if traits is not None else {"order_count": 3, "open_support_contacts": 0},
        purchase,
        products,
    )


# -- facts ---------------------------------------------------------------------------------
def test_name_form_per_channel(templates):
    g = greeter(templates)
    assert g.greet(facts(), "chat")["text"].startswith("Hi Anna!")
    phone = g.greet(facts(), "phone")
    assert phone["text"].startswith("Good morning, Ms Schmidt,")
    assert phone["facts"]["name"] == "Ms Schmidt"
    assert g.greet(facts(), "email")["text"].startswith("Dear Ms Schmidt,")
    de = g.greet(facts(), "phone", "de")
    assert de["text"].startswith("Guten Morgen, Frau Schmidt,")
    assert g.greet(facts(), "chat", "de")["text"].startswith("Hallo Anna!")


def test_name_without_title_uses_full_name_and_plain_string_names_work(templates):
    g = greeter(templates)
    f = facts(profile(name="Jean Dupont"))
    assert g.greet(f, "phone", "fr")["text"].startswith("Bonjour Jean Dupont, merci")
    assert g.greet(f, "email", "fr")["text"].startswith("Bonjour Jean Dupont,")


def test_no_name_degrades_gracefully(templates):
    g = greeter(templates)
    f = facts(profile(name=None))
    for channel in CHANNELS:
        for locale in ("en", "de", "fr", "es"):
            text = g.greet(f, channel, locale)["text"]
            assert "None" not in text and ",," not in text and "  " not in text
    assert g.greet(f, "chat")["text"].startswith("Hi! ")
    assert g.greet(f, "email")["text"].startswith("Hello,")
    assert "name" not in g.greet(f, "chat")["facts"]


def test_tier_and_its_absence(templates):
    g = greeter(templates)
    assert "as a gold member" in g.greet(facts(), "phone")["text"]
    text = g.greet(facts(profile(tier=None)), "phone")["text"]
    assert "member" not in text
    assert "tier" not in g.greet(facts(profile(tier=None)), "phone")["facts"]


def test_recent_purchase_uses_catalog_name_date_and_money(templates):
    g = greeter(templates)
    f = facts(purchase=PURCHASE, products=PRODUCTS)
    assert f["recent_purchase"]["product_name"] == "Kettle"  # the most valuable line
    phone = g.greet(f, "phone")
    assert "I see you bought the Kettle on November 19, 2026." in phone["text"]
    assert phone["facts"]["recent_product"] == "Kettle"
    assert "(€39.90)" in g.greet(f, "email")["text"]
    assert "am 19. November 2026 Kettle gekauft" in g.greet(f, "phone", "de")["text"]
    assert "(39,90\xa0€)" in g.greet(f, "email", "fr")["text"]
    assert "How are you getting on with your Kettle?" in g.greet(f, "chat")["text"]


def test_purchase_without_product_name_never_says_an_empty_name(templates):
    g = greeter(templates)
    f = facts(purchase=PURCHASE, products={})  # catalog knows none of them
    assert f["recent_purchase"]["product_name"] is None
    for channel in CHANNELS:
        text = g.greet(f, channel)["text"]
        assert "bought the" not in text and "your  " not in text and "order of" not in text
    assert "Welcome back!" in g.greet(f, "chat")["text"]
    # an order line that carries its own name is enough
    named = {**PURCHASE, "lines": [{"product_id": "x", "quantity": 1, "name": "Mug"}]}
    assert "your Mug?" in g.greet(facts(purchase=named), "chat")["text"]
    blank = {**PURCHASE, "lines": [{"product_id": "x", "quantity": 1, "name": "  "}]}
    assert facts(purchase=blank)["recent_purchase"]["product_name"] is None


def test_open_support_contact_and_its_absence(templates):
    g = greeter(templates)
    f = facts(traits={"order_count": 2, "open_support_contacts": 1})
    assert "I can see your open support request" in g.greet(f, "chat")["text"]
    assert g.greet(f, "chat")["facts"]["has_open_issue"] is True
    assert "open support request" not in g.greet(facts(), "chat")["text"]


def test_first_time_versus_returning(templates):
    g = greeter(templates)
    first = facts(traits={"order_count": 0})
    assert "nice to meet you" in g.greet(first, "chat")["text"]
    assert g.greet(first, "chat")["facts"]["is_first_time"] is True
    returning = facts(traits={"order_count": 4})
    assert "Welcome back!" in g.greet(returning, "chat")["text"]
    assert g.greet(returning, "chat")["facts"]["is_returning"] is True
    assert "first time" in g.greet(facts(traits={}), "phone")["text"]


def test_unknown_caller_gets_a_generic_greeting(templates):
    g = greeter(templates)
    result = g.greet(empty_facts(), "phone")
    assert result["text"] == "Hello, thank you for calling. How can I help you today?"
    assert result["locale"] == "en"
    assert g.greet(empty_facts(), "chat", "de")["text"] == "Hallo! Wie kann ich helfen?"
    assert "None" not in g.greet(empty_facts(), "email")["text"]


def test_autoescaped_html_and_plain_text(templates):
    g = greeter(templates)
    f = facts(profile(name={"given": "Zoë <b>&'", "family": "O'Neil"}))
    out = g.greet(f, "chat")
    assert out["text"].startswith("Hi Zoë <b>&'!")
    assert out["html"].startswith("Hi Zoë &lt;b&gt;&amp;&#39;!")


# -- locales -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("locale", "channel", "start"),
    [
        ("en", "chat", "Hi Anna!"),
        ("en", "phone", "Good morning, Ms Schmidt"),
        ("en", "email", "Dear Ms Schmidt,"),
        ("de", "chat", "Hallo Anna!"),
        ("de", "phone", "Guten Morgen, Frau Schmidt"),
        ("de", "email", "Sehr geehrte Frau Schmidt,"),
        ("fr", "chat", "Bonjour Anna !"),
        ("fr", "phone", "Bonjour Madame Schmidt"),
        ("fr", "email", "Chère Madame Schmidt,"),
        ("es", "chat", "¡Hola Anna!"),
        ("es", "phone", "Buenos días, Sra. Schmidt"),
        ("es", "email", "Estimada Sra. Schmidt:"),
    ],
)
def test_every_shipped_locale_and_channel(templates, locale, channel, start):
    out = greeter(templates).greet(facts(), channel, locale)
    assert out["text"].startswith(start)
    assert out["locale"] == locale
    assert out["template"] == {
        "id": f"default:{locale}:{channel}",
        "origin": "default",
        "locale": locale,
        "version": out["template"]["version"],
        "fallback": False,
    }


def test_male_forms_of_address():
    f = facts(profile(name={"given": "Hans", "family": "Meier", "title": "Mr"}))
    g = Greeter(_DefaultsOnly(), lambda: NOW)
    assert g.greet(f, "email", "de")["text"].startswith("Sehr geehrter Herr Meier,")
    assert g.greet(f, "email", "es")["text"].startswith("Estimado Sr. Meier:")
    assert g.greet(f, "email", "fr")["text"].startswith("Cher Monsieur Meier,")


class _DefaultsOnly(GreetingTemplates):
    def __init__(self):  # no Redis: only the shipped defaults
        pass

    def resolve(self, chain, channel):
        tag = next(t for t in chain if (t, channel) in DEFAULT_TEMPLATES)
        return self._entry(tag, channel, None)


def test_shipped_defaults_pass_validation():
    assert {loc for loc, _ in DEFAULT_TEMPLATES} == {"en", "de", "fr", "es"}
    for source in DEFAULT_TEMPLATES.values():
        validate_template(source)


def test_locale_fallback_chain(templates):
    assert locale_chain("de-AT") == ["de-AT", "de", "en"]
    assert locale_chain("de_at") == ["de-AT", "de", "en"]
    assert locale_chain(None) == ["en"]
    g = greeter(templates)
    at = g.greet(facts(profile(locale="de-AT")), "phone")
    assert at["locale"] == "de" and at["requested_locale"] == "de-AT"
    assert at["text"].startswith("Guten Morgen, Frau Schmidt")
    assert g.greet(facts(profile(locale="pt-BR")), "chat")["locale"] == "en"
    # an explicit locale beats the profile's
    assert g.greet(facts(profile(locale="fr")), "chat", "es")["locale"] == "es"
    # an override for de-AT wins over de once it exists
    templates.put("de-AT", "chat", "Servus{% if name %} {{ name }}{% endif %}!")
    at = g.greet(facts(profile(locale="de-AT")), "chat")
    assert (at["text"], at["locale"], at["template"]["origin"]) == (
        "Servus Anna!",
        "de-AT",
        "custom",
    )


def test_dates_format_for_the_regional_locale(templates):
    f = facts(profile(locale="de-AT"), purchase=PURCHASE, products=PRODUCTS)
    out = greeter(templates).greet(f, "email")
    assert "(€\xa039,90)" in out["text"]  # Austrian money format with German wording


def test_invalid_locale_or_channel_is_invalid_input(templates):
    g = greeter(templates)
    with pytest.raises(InvalidInput) as info:
        g.greet(facts(), "fax")
    assert info.value.field == "channel"
    with pytest.raises(InvalidInput) as info:
        g.greet(facts(), "chat", "not a locale!")
    assert info.value.field == "locale"


# -- time of day ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("timezone", "expected"),
    [
        ("Europe/Berlin", "morning"),  # 09:30
        ("Asia/Tokyo", "afternoon"),  # 17:30 -> afternoon ends at 18
        ("Asia/Kolkata", "afternoon"),  # 14:00
        ("America/New_York", "night"),  # 03:30
        ("America/Los_Angeles", "night"),  # 00:30
        ("Pacific/Auckland", "evening"),  # 21:30 (NZDT)
        ("UTC", "morning"),  # 08:30
    ],
)
def test_time_of_day_across_timezones(templates, timezone, expected):
    # one fixed instant, 2026-11-22 08:30 UTC, seen from each customer's timezone
    out = greeter(templates).greet(facts(profile(timezone=timezone)), "phone")
    assert out["facts"]["time_of_day"] == expected


def test_time_of_day_words_per_locale(templates):
    evening = datetime(2026, 11, 22, 19, 0, tzinfo=UTC).timestamp()  # 20:00 Berlin
    g = greeter(templates, evening)
    f = facts()
    assert g.greet(f, "phone")["text"].startswith("Good evening")
    assert g.greet(f, "phone", "de")["text"].startswith("Guten Abend")
    assert g.greet(f, "phone", "fr")["text"].startswith("Bonsoir")
    assert g.greet(f, "phone", "es")["text"].startswith("Buenas noches")
    noon = datetime(2026, 11, 22, 13, 0, tzinfo=UTC).timestamp()  # 14:00 Berlin
    assert greeter(templates, noon).greet(f, "phone", "es")["text"].startswith("Buenas tardes")
    assert [time_of_day(h) for h in (4, 5, 11, 12, 17, 18, 21, 22)] == [
        "night",
        "morning",
        "morning",
        "afternoon",
        "afternoon",
        "evening",
        "evening",
        "night",
    ]


def test_unknown_timezone_means_no_time_of_day(templates):
    out = greeter(templates).greet(facts(profile(timezone="Mars/Olympus")), "phone")
    assert "time_of_day" not in out["facts"]
    assert out["text"].startswith("Hello, Ms Schmidt")


# -- templates as data, and the sandbox ----------------------------------------------------
def test_put_get_list_delete(templates):
    assert templates.get("de", "chat")["origin"] == "default"
    entry, created = templates.put("de", "chat", "Moin {{ name|default('du') }}!")
    assert created and entry["origin"] == "custom"
    assert templates.get("de", "chat")["source"] == "Moin {{ name|default('du') }}!"
    _, created = templates.put("de", "chat", "Moin!")
    assert not created
    listed = {(t["locale"], t["channel"]): t["origin"] for t in templates.list()}
    assert listed[("de", "chat")] == "custom" and listed[("en", "chat")] == "default"
    assert len(listed) == 12
    templates.delete("de", "chat")
    assert templates.get("de", "chat")["origin"] == "default"
    templates.delete("de", "chat")  # nothing to remove, but a default exists: fine
    with pytest.raises(TemplateNotFound):
        templates.delete("it", "chat")
    with pytest.raises(TemplateNotFound):
        templates.get("it", "chat")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ name.__class__.__mro__ }}",
        "{{ name['__class__'] }}",
        "{{ name|attr('__class__') }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.upper() }}",
        "{{ 'a' * 1000000 }}",
        "{{ 9 ** 99999 }}",
        "{% include 'x' %}",
        "{% for c in name %}{{ c }}{% endfor %}",
        "{% macro m() %}x{% endmacro %}",
        "{{ cycler }}",
        "{{ range }}",
        "{{ config }}",
        "{{ _private }}",
        "{{ name",
        "x" * 2001,
        "",
    ],
)
def test_unsafe_or_invalid_templates_are_refused_on_save(templates, source):
    with pytest.raises(InvalidTemplate) as info:
        templates.put("en", "chat", source)
    assert info.value.field == "source"
    assert templates.get("en", "chat")["origin"] == "default"


def test_escape_attempt_stored_behind_our_back_cannot_execute(templates, redis_client):
    # someone writes straight to Redis, bypassing validation: rendering must still be safe
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    redis_client.hset(Keys("rp").greeting_templates(), "en:chat", json.dumps({"source": evil}))
    out = greeter(templates).greet(facts(), "chat")
    assert out["template"]["fallback"] is True
    assert out["template"]["id"] == "default:en:chat"
    assert out["text"].startswith("Hi Anna!")
    assert "class" not in out["text"]


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",  # SecurityError when printed
        "{{ name.__len__() }}",
        "{% for x in range(10) %}{% endfor %}{{ 1/0 }}",
        "{{ 'x' * 5000 }}",  # too long
        "{{ broken",
    ],
)
def test_render_failures_fall_back_to_the_default(templates, redis_client, source):
    redis_client.hset(Keys("rp").greeting_templates(), "de:phone", json.dumps({"source": source}))
    out = greeter(templates).greet(facts(), "phone", "de")
    assert out["template"]["fallback"] is True
    assert out["template"]["origin"] == "default"
    assert out["text"].startswith("Guten Morgen, Frau Schmidt")


def test_unreadable_override_is_ignored(templates, redis_client):
    redis_client.hset(Keys("rp").greeting_templates(), "en:chat", "{not json")
    assert templates.get("en", "chat")["origin"] == "default"


def test_invalid_locale_on_save(templates):
    with pytest.raises(InvalidInput) as info:
        templates.put("english!", "chat", "Hi")
    assert info.value.field == "locale"
    with pytest.raises(InvalidInput) as info:
        templates.put("en", "sms", "Hi")
    assert info.value.field == "channel"


# -- one language per answer ---------------------------------------------------------------
GBP_PURCHASE = {**PURCHASE, "currency": "GBP", "total": "1.65"}


def test_fi_fi_gets_english_with_an_english_date_and_says_it_fell_back(templates):
    f = facts(profile(locale="fi-FI"), purchase=PURCHASE, products=PRODUCTS)
    g = greeter(templates)
    phone = g.greet(f, "phone")
    assert "I see you bought the Kettle on November 19, 2026." in phone["text"]
    assert "marraskuuta" not in phone["text"]
    assert (phone["locale"], phone["requested_locale"], phone["format_locale"]) == (
        "en",
        "fi-FI",
        "en",
    )
    assert phone["template"]["locale"] == "en" and phone["template"]["fallback"] is True
    email = g.greet(f, "email")
    assert "(€39.90)" in email["text"] and email["template"]["fallback"] is True
    # the explicit locale counts like the profile's
    assert g.greet(facts(), "chat", "pt-BR")["template"]["fallback"] is True


def test_de_at_gets_german_with_german_dates_and_money_and_no_fallback(templates):
    f = facts(profile(locale="de-AT"), purchase=GBP_PURCHASE, products=PRODUCTS)
    g = greeter(templates)
    phone = g.greet(f, "phone")
    assert "am 19. November 2026 Kettle gekauft" in phone["text"]
    assert (phone["locale"], phone["format_locale"]) == ("de", "de-AT")
    assert phone["template"]["fallback"] is False  # a regional step in the same language
    email = g.greet(f, "email")
    assert "(£\xa01,65)" in email["text"]  # the data's currency, in Austrian German format
    plain_de = g.greet(
        facts(profile(locale="de"), purchase=GBP_PURCHASE, products=PRODUCTS), "email"
    )
    assert "(1,65\xa0£)" in plain_de["text"] and plain_de["format_locale"] == "de"


def test_a_regional_english_locale_keeps_its_date_format(templates):
    f = facts(profile(locale="en-GB"), purchase=PURCHASE, products=PRODUCTS)
    out = greeter(templates).greet(f, "phone")
    assert "on 19 November 2026." in out["text"]
    assert (out["format_locale"], out["template"]["fallback"]) == ("en-GB", False)


def test_no_requested_locale_is_english_without_fallback(templates):
    out = greeter(templates).greet(empty_facts(), "chat")
    assert (out["locale"], out["format_locale"], out["template"]["fallback"]) == (
        "en",
        "en",
        False,
    )


@pytest.mark.parametrize(
    ("locale", "tier", "words"),
    [
        ("en", "gold", "as a gold member"),
        ("de", "gold", "als Gold-Kunde haben Sie"),
        ("de", "silver", "als Silber-Kunde"),
        ("de", "platinum", "als Platin-Kunde"),
        ("fr", "gold", "en tant que client Or,"),
        ("fr", "silver", "en tant que client Argent,"),
        ("es", "gold", "como cliente Oro tiene prioridad"),
        ("es", "bronze", "como cliente Bronce"),
        ("de", "diamond", "als diamond-Kunde"),  # no translation: as recorded
    ],
)
def test_tier_names_are_translated_per_shipped_locale(templates, locale, tier, words):
    out = greeter(templates).greet(facts(profile(tier=tier)), "phone", locale)
    assert words in out["text"]
    assert out["facts"]["tier"] == tier  # the recorded value, for conditions


def test_a_failing_override_falls_back_to_a_default_formatted_in_its_language(
    templates, redis_client
):
    # a pt override that fails: the English default is used, with English formats
    redis_client.hset(
        Keys("rp").greeting_templates(), "pt:phone", json.dumps({"source": "{{ broken"})
    )
    f = facts(profile(locale="pt-BR"), purchase=PURCHASE, products=PRODUCTS)
    out = greeter(templates).greet(f, "phone")
    assert out["template"]["id"] == "default:en:phone" and out["template"]["fallback"] is True
    assert "on November 19, 2026." in out["text"] and out["format_locale"] == "en"


# -- the sandbox at render time (issue 18) ---------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "{{ '%999999999s' % name }}",
        "{% if name %}{{ '%300000000s' % name }}{% endif %}Hello {{ name }}",
        "{{ name * 100000000 }}",
        "{{ [name] * 100000000 }}",
        "{{ '{:>999999999}'.format(name) }}",
        "{{ name.ljust(999999999) }}",
    ],
)
def test_an_amplifying_template_costs_nothing_at_render(templates, redis_client, source):
    # stored behind validation's back (or hidden in a branch the test render never takes):
    # refused while rendering, before any large string exists, and the default greets
    import time
    import tracemalloc

    redis_client.hset(Keys("rp").greeting_templates(), "de:phone", json.dumps({"source": source}))
    tracemalloc.start()
    started = time.perf_counter()
    out = greeter(templates).greet(facts(), "phone", "de")
    took = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out["template"]["fallback"] is True and out["template"]["origin"] == "default"
    assert out["text"].startswith("Guten Morgen, Frau Schmidt")
    assert peak < 5_000_000, peak  # the bombs above would need 100 MB to 2 GB
    assert took < 1.0


@pytest.mark.parametrize(
    "source", ["{{ '%5s' % name }}", "{% if name %}{{ '%9s' % name }}{% endif %}"]
)
def test_string_formatting_is_refused_on_save_even_in_a_branch(templates, source):
    with pytest.raises(InvalidTemplate) as info:
        templates.put("en", "chat", source)
    assert "'%'" in info.value.detail and info.value.field == "source"


def test_the_output_is_cut_off_while_rendering():
    from recommend.engage import sandbox

    long_name = "x" * (sandbox.MAX_OUTPUT_CHARS // 2 + 1)
    with pytest.raises(Exception):  # noqa: B017 - any failure makes the caller fall back
        sandbox.render("{{ a }}{{ b }}{{ c }}", {"a": long_name, "b": long_name, "c": "!"})
    with pytest.raises(Exception):  # noqa: B017
        sandbox.render("{{ a + b }}", {"a": long_name, "b": long_name})
    assert sandbox.render("{{ a }}!", {"a": "short"}) == "short!"
