"""Shipped greeting templates (Jinja2, rendered in the sandbox), per-locale forms of address and
tier names.

Admins override any of these through the API; deleting an override brings the default back.
Variables are documented in ``recommend/engage/greetings.py`` (``VARIABLES``).
"""

from __future__ import annotations

# Honorific for a title or gender recorded on the profile, per language.
HONORIFICS: dict[str, dict[str, str]] = {
    "en": {"female": "Ms", "male": "Mr"},
    "de": {"female": "Frau", "male": "Herr"},
    "fr": {"female": "Madame", "male": "Monsieur"},
    "es": {"female": "Sra.", "male": "Sr."},
}
# Titles people record, mapped to the gender used to pick the honorific above.
TITLE_GENDER: dict[str, str] = {
    "ms": "female",
    "mrs": "female",
    "miss": "female",
    "frau": "female",
    "mme": "female",
    "madame": "female",
    "mlle": "female",
    "sra": "female",
    "señora": "female",
    "srta": "female",
    "f": "female",
    "female": "female",
    "mr": "male",
    "herr": "male",
    "m": "male",
    "monsieur": "male",
    "sr": "male",
    "señor": "male",
    "male": "male",
}

# The loyalty tiers (``profiles/attributes.py``) as a template says them (``tier_name``), per
# language; a tier missing here is shown as recorded. ``tier`` stays the recorded value.
TIER_NAMES: dict[str, dict[str, str]] = {
    "en": {"bronze": "bronze", "silver": "silver", "gold": "gold", "platinum": "platinum"},
    "de": {"bronze": "Bronze", "silver": "Silber", "gold": "Gold", "platinum": "Platin"},
    "fr": {"bronze": "Bronze", "silver": "Argent", "gold": "Or", "platinum": "Platine"},
    "es": {"bronze": "Bronce", "silver": "Plata", "gold": "Oro", "platinum": "Platino"},
}

_EN_HELLO = (
    "{% if time_of_day == 'morning' %}Good morning{% elif time_of_day == 'afternoon' %}"
    "Good afternoon{% elif time_of_day == 'evening' %}Good evening{% else %}Hello{% endif %}"
)
_DE_HELLO = (
    "{% if time_of_day == 'morning' %}Guten Morgen{% elif time_of_day == 'evening' "
    "or time_of_day == 'night' %}Guten Abend{% else %}Guten Tag{% endif %}"
)
_FR_HELLO = "{% if time_of_day in ('evening', 'night') %}Bonsoir{% else %}Bonjour{% endif %}"
_ES_HELLO = (
    "{% if time_of_day == 'morning' %}Buenos días{% elif time_of_day == 'afternoon' %}"
    "Buenas tardes{% elif time_of_day %}Buenas noches{% else %}Hola{% endif %}"
)

DEFAULT_TEMPLATES: dict[tuple[str, str], str] = {
    # -- English ------------------------------------------------------------------------
    ("en", "chat"): (
        "Hi{% if name %} {{ name }}{% endif %}! "
        "{% if has_open_issue %}I can see your open support request; let's sort it out. "
        "{% elif recent_product %}How are you getting on with your {{ recent_product }}? "
        "{% elif is_returning %}Welcome back! "
        "{% elif is_first_time %}Welcome, nice to meet you! {% endif %}"
        "How can I help?"
    ),
    ("en", "phone"): (
        _EN_HELLO + "{% if name %}, {{ name }}{% endif %}, thank you for calling"
        "{% if tier %} - as a {{ tier_name }} member you are a priority for us{% endif %}. "
        "{% if has_open_issue %}I can see your open support request. "
        "{% elif recent_product %}I see you bought the {{ recent_product }}"
        "{% if recent_purchase_date %} on {{ recent_purchase_date }}{% endif %}. "
        "{% elif is_returning %}Good to hear from you again. "
        "{% elif is_first_time %}It is great to hear from you for the first time. {% endif %}"
        "How can I help you today?"
    ),
    ("en", "email"): (
        "{% if honorific %}Dear {{ formal_name }},{% elif name %}Dear {{ name }},"
        "{% else %}Hello,{% endif %} "
        "{% if has_open_issue %}thank you for your patience with your open request. "
        "{% elif recent_product %}thank you for your order of the {{ recent_product }}"
        "{% if recent_purchase_amount %} ({{ recent_purchase_amount }}){% endif %}. "
        "{% elif is_returning %}thank you for being a loyal customer. "
        "{% elif is_first_time %}welcome, and thank you for getting in touch. "
        "{% else %}thank you for getting in touch. {% endif %}"
    ),
    # -- German: du/Vorname in chat, Sie/Frau Schmidt on the phone and in email ------------
    ("de", "chat"): (
        "Hallo{% if name %} {{ name }}{% endif %}! "
        "{% if has_open_issue %}Ich sehe deine offene Anfrage, die klären wir gleich. "
        "{% elif recent_product %}Wie gefällt dir dein {{ recent_product }}? "
        "{% elif is_returning %}Schön, dass du wieder da bist! "
        "{% elif is_first_time %}Willkommen! {% endif %}"
        "Wie kann ich helfen?"
    ),
    ("de", "phone"): (
        _DE_HELLO + "{% if name %}, {{ name }}{% endif %}, danke für Ihren Anruf"
        "{% if tier %} - als {{ tier_name }}-Kunde haben Sie bei uns Vorrang{% endif %}. "
        "{% if has_open_issue %}Ich sehe Ihre offene Anfrage. "
        "{% elif recent_product %}Ich sehe, Sie haben {% if recent_purchase_date %}am "
        "{{ recent_purchase_date }} {% endif %}{{ recent_product }} gekauft. "
        "{% elif is_returning %}Schön, wieder von Ihnen zu hören. "
        "{% elif is_first_time %}Schön, dass Sie sich zum ersten Mal melden. {% endif %}"
        "Wie kann ich Ihnen helfen?"
    ),
    ("de", "email"): (
        "{% if honorific == 'Frau' %}Sehr geehrte {{ formal_name }},"
        "{% elif honorific == 'Herr' %}Sehr geehrter {{ formal_name }},"
        "{% elif name %}Guten Tag {{ name }},{% else %}Guten Tag,{% endif %} "
        "{% if has_open_issue %}danke für Ihre Geduld mit Ihrer offenen Anfrage. "
        "{% elif recent_product %}vielen Dank für Ihre Bestellung von {{ recent_product }}"
        "{% if recent_purchase_amount %} ({{ recent_purchase_amount }}){% endif %}. "
        "{% elif is_returning %}vielen Dank für Ihre Treue. "
        "{% else %}vielen Dank für Ihre Nachricht. {% endif %}"
    ),
    # -- French: tu/prénom in chat, vous/Madame Dupont otherwise ----------------------------
    ("fr", "chat"): (
        "Bonjour{% if name %} {{ name }}{% endif %} ! "
        "{% if has_open_issue %}Je vois ta demande en cours, on s'en occupe. "
        "{% elif recent_product %}Ton {{ recent_product }} te plaît ? "
        "{% elif is_returning %}Content de te revoir ! "
        "{% elif is_first_time %}Bienvenue ! {% endif %}"
        "Comment puis-je t'aider ?"
    ),
    ("fr", "phone"): (
        _FR_HELLO + "{% if name %} {{ name }}{% endif %}, merci de votre appel"
        "{% if tier %} ; en tant que client {{ tier_name }}, vous êtes prioritaire{% endif %}. "
        "{% if has_open_issue %}Je vois votre demande en cours. "
        "{% elif recent_product %}Je vois que vous avez acheté {{ recent_product }}"
        "{% if recent_purchase_date %} le {{ recent_purchase_date }}{% endif %}. "
        "{% elif is_returning %}Ravi de vous entendre à nouveau. "
        "{% elif is_first_time %}Ravi de vous accueillir. {% endif %}"
        "Comment puis-je vous aider ?"
    ),
    ("fr", "email"): (
        "{% if honorific %}{{ 'Chère' if honorific == 'Madame' else 'Cher' }} "
        "{{ formal_name }},{% elif name %}Bonjour {{ name }},{% else %}Bonjour,{% endif %} "
        "{% if has_open_issue %}merci de votre patience concernant votre demande en cours. "
        "{% elif recent_product %}merci pour votre commande de {{ recent_product }}"
        "{% if recent_purchase_amount %} ({{ recent_purchase_amount }}){% endif %}. "
        "{% elif is_returning %}merci de votre fidélité. "
        "{% else %}merci de nous avoir contactés. {% endif %}"
    ),
    # -- Spanish: tú/nombre in chat, usted/Sra. García otherwise ----------------------------
    ("es", "chat"): (
        "¡Hola{% if name %} {{ name }}{% endif %}! "
        "{% if has_open_issue %}Veo tu solicitud abierta; vamos a resolverla. "
        "{% elif recent_product %}¿Qué tal con tu {{ recent_product }}? "
        "{% elif is_returning %}¡Qué bien verte de nuevo! "
        "{% elif is_first_time %}¡Bienvenido! {% endif %}"
        "¿En qué puedo ayudarte?"
    ),
    ("es", "phone"): (
        _ES_HELLO + "{% if name %}, {{ name }}{% endif %}, gracias por llamar"
        "{% if tier %}; como cliente {{ tier_name }} tiene prioridad{% endif %}. "
        "{% if has_open_issue %}Veo su solicitud abierta. "
        "{% elif recent_product %}Veo que compró {{ recent_product }}"
        "{% if recent_purchase_date %} el {{ recent_purchase_date }}{% endif %}. "
        "{% elif is_returning %}Es un placer atenderle de nuevo. "
        "{% elif is_first_time %}Es un placer atenderle por primera vez. {% endif %}"
        "¿En qué puedo ayudarle?"
    ),
    ("es", "email"): (
        "{% if honorific %}{{ 'Estimada' if honorific == 'Sra.' else 'Estimado' }} "
        "{{ formal_name }}:{% elif name %}Hola {{ name }}:{% else %}Hola:{% endif %} "
        "{% if has_open_issue %}gracias por su paciencia con su solicitud abierta. "
        "{% elif recent_product %}gracias por su pedido de {{ recent_product }}"
        "{% if recent_purchase_amount %} ({{ recent_purchase_amount }}){% endif %}. "
        "{% elif is_returning %}gracias por su confianza. "
        "{% else %}gracias por contactarnos. {% endif %}"
    ),
}

# Used only if even a shipped default fails to render (it should not).
LAST_RESORT = {"en": "Hello!", "de": "Guten Tag!", "fr": "Bonjour !", "es": "¡Hola!"}
