"""Shipped next-best actions, written to the catalogue on first use (admins edit them after).

The fields are documented in ``recommend/engage/action_catalog.py``; rules in
``recommend/engage/rules.py``. Each say line ships for the greeting languages (en, de, fr, es);
de, fr and es say du/tu/tú in chat and Sie/vous/usted on the phone and in email, as the
greetings do (``name`` is already the channel's form of address).
"""

from __future__ import annotations

from typing import Any


def _chat(informal: str, formal: str) -> str:
    """The informal form in chat, the formal one elsewhere."""
    return f"{{% if channel == 'chat' %}}{informal}{{% else %}}{formal}{{% endif %}}"


_NAME = "{% if name %}, {{ name }}{% endif %}"
_PRICE = "{% if product_price %} ({{ product_price }}){% endif %}"

DEFAULT_ACTIONS: list[dict[str, Any]] = [
    {
        "id": "resolve-open-ticket",
        "title": "Resolve the open support request",
        "say": {
            "en": "I can see your open request" + _NAME + "; let me check where it stands.",
            "de": "Ich sehe "
            + _chat("deine", "Ihre")
            + " offene Anfrage"
            + _NAME
            + "; ich schaue gleich nach dem Stand.",
            "fr": "Je vois "
            + _chat("ta", "votre")
            + " demande en cours"
            + _NAME
            + " ; je regarde où elle en est.",
            "es": "Veo "
            + _chat("tu", "su")
            + " solicitud abierta"
            + _NAME
            + "; "
            + _chat("déjame", "permítame")
            + " comprobar cómo va.",
        },
        "category": "service",
        "value": 100,
        "rules": {"field": "traits.open_support_contacts", "op": ">=", "value": 1},
        "cooldown_days": 1,
    },
    {
        "id": "winback-60d",
        "title": "Win-back offer",
        "say": {
            "en": "It has been a while" + _NAME + "! "
            "We would love to welcome you back with 10% off your next order.",
            "de": "Lange nicht gesehen"
            + _NAME
            + "! "
            + _chat(
                "Zur Rückkehr bekommst du 10 % Rabatt auf deine nächste Bestellung.",
                "Zur Rückkehr erhalten Sie 10 % Rabatt auf Ihre nächste Bestellung.",
            ),
            "fr": "Cela fait un moment"
            + _NAME
            + " ! "
            + _chat(
                "Pour ton retour, profite de 10 % de remise sur ta prochaine commande.",
                "Pour votre retour, profitez de 10 % de remise sur votre prochaine commande.",
            ),
            "es": "¡Cuánto tiempo"
            + _NAME
            + "! "
            + _chat(
                "Para darte la bienvenida, tienes un 10 % de descuento en tu próximo pedido.",
                "Para darle la bienvenida, tiene un 10 % de descuento en su próximo pedido.",
            ),
        },
        "category": "retention",
        "value": 60,
        "rules": {
            "all": [
                {"field": "traits.order_count", "op": ">=", "value": 1},
                {"days_since": "traits.last_purchase_at", "op": ">", "value": 60},
            ]
        },
        "cooldown_days": 30,
    },
    {
        "id": "suggest-top-product",
        "title": "Suggest the top recommendation",
        "say": {
            "en": "{% if product_name %}Based on what you like, you might enjoy "
            "{{ product_name }}" + _PRICE + ".{% endif %}",
            "de": "{% if product_name %}Nach "
            + _chat("deinem", "Ihrem")
            + " Geschmack könnte "
            + _chat("dir", "Ihnen")
            + " {{ product_name }}"
            + _PRICE
            + " gefallen.{% endif %}",
            "fr": "{% if product_name %}D'après " + _chat("tes", "vos") + " goûts, "
            "{{ product_name }}"
            + _PRICE
            + " pourrait "
            + _chat("te", "vous")
            + " plaire.{% endif %}",
            "es": "{% if product_name %}Por "
            + _chat("tus", "sus")
            + " gustos, "
            + _chat("te", "le")
            + " podría gustar {{ product_name }}"
            + _PRICE
            + ".{% endif %}",
        },
        "category": "sales",
        "value": 40,
        "rules": {"field": "traits.order_count", "op": ">=", "value": 1},
        "cooldown_days": 7,
        "product": "top_recommendation",
    },
    {
        "id": "loyalty-upgrade",
        "title": "Invite to the loyalty programme's next tier",
        "say": {
            "en": "As one of our regular customers you qualify for our next loyalty tier. "
            "Shall I upgrade you?",
            "de": _chat(
                "Mit deinen vielen Bestellungen bekommst du die nächste Stufe unseres "
                "Treueprogramms. Soll ich dich hochstufen?",
                "Mit Ihren vielen Bestellungen erhalten Sie die nächste Stufe unseres "
                "Treueprogramms. Soll ich Sie hochstufen?",
            ),
            "fr": _chat(
                "Grâce à tes nombreuses commandes, tu as droit au niveau suivant de notre "
                "programme de fidélité. Je te fais passer au niveau supérieur ?",
                "Grâce à vos nombreuses commandes, vous avez droit au niveau suivant de notre "
                "programme de fidélité. Puis-je vous faire passer au niveau supérieur ?",
            ),
            "es": _chat(
                "Por tus compras frecuentes, puedes pasar al siguiente nivel de nuestro "
                "programa de fidelidad. ¿Te subo de nivel?",
                "Por sus compras frecuentes, puede pasar al siguiente nivel de nuestro "
                "programa de fidelidad. ¿Le subo de nivel?",
            ),
        },
        "category": "retention",
        "value": 50,
        "rules": {
            "all": [
                {"field": "traits.order_count", "op": ">=", "value": 5},
                {"field": "profile.tier", "op": "not_in", "value": ["gold", "platinum"]},
            ]
        },
        "cooldown_days": 90,
    },
    {
        "id": "satisfaction-survey",
        "title": "Ask about the latest purchase",
        "say": {
            "en": "{% if recent_product %}How do you like your {{ recent_product }}? {% endif %}"
            "Would you answer two quick questions about your last order?",
            "de": _chat(
                "{% if recent_product %}Wie gefällt dir dein {{ recent_product }}? {% endif %}"
                "Magst du zwei kurze Fragen zu deiner letzten Bestellung beantworten?",
                "{% if recent_product %}Wie gefällt Ihnen {{ recent_product }}? {% endif %}"
                "Würden Sie zwei kurze Fragen zu Ihrer letzten Bestellung beantworten?",
            ),
            "fr": _chat(
                "{% if recent_product %}Que penses-tu de {{ recent_product }} ? {% endif %}"
                "Veux-tu répondre à deux questions rapides sur ta dernière commande ?",
                "{% if recent_product %}Que pensez-vous de {{ recent_product }} ? {% endif %}"
                "Accepteriez-vous de répondre à deux questions rapides sur votre dernière "
                "commande ?",
            ),
            "es": _chat(
                "{% if recent_product %}¿Qué tal con tu {{ recent_product }}? {% endif %}"
                "¿Respondes dos preguntas rápidas sobre tu último pedido?",
                "{% if recent_product %}¿Qué tal con su {{ recent_product }}? {% endif %}"
                "¿Respondería dos preguntas rápidas sobre su último pedido?",
            ),
        },
        "category": "feedback",
        "value": 15,
        "rules": {
            "all": [
                {"days_since": "traits.last_purchase_at", "op": ">=", "value": 3},
                {"days_since": "traits.last_purchase_at", "op": "<=", "value": 30},
            ]
        },
        "cooldown_days": 60,
    },
    {
        "id": "first-order-welcome",
        "title": "Welcome offer for a first order",
        "say": {
            "en": "Welcome" + _NAME + "! Your first order ships free this week.",
            "de": "Willkommen"
            + _NAME
            + "! "
            + _chat("Deine", "Ihre")
            + " erste Bestellung ist diese Woche versandkostenfrei.",
            "fr": "Bienvenue"
            + _NAME
            + " ! Cette semaine, la livraison de "
            + _chat("ta", "votre")
            + " première commande est offerte.",
            "es": "¡Bienvenido"
            + _NAME
            + "! Esta semana, el envío de "
            + _chat("tu", "su")
            + " primer pedido es gratis.",
        },
        "category": "sales",
        "value": 30,
        "rules": {
            "any": [
                {"field": "traits.order_count", "op": "missing"},
                {"field": "traits.order_count", "op": "==", "value": 0},
            ]
        },
        "cooldown_days": 14,
    },
]
