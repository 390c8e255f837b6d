"""Category derivation for catalogs that have none (the Online Retail data).

The Online Retail file gives a product only a free-text ``Description`` such as
``WHITE HANGING HEART T-LIGHT HOLDER``. :func:`derive_category` maps it to one of a small,
fixed set of categories with the keyword table below:

- the description is upper-cased and split into words (letters, digits, ``-`` and ``&``);
- the rules are tried **in table order**; the first rule with a keyword among the words wins,
  so more specific rules come first (``CHRISTMAS CARD`` is ``christmas``, a season beats a
  product type; ``T-LIGHT HOLDER`` is ``candles & lights`` before ``home decor``);
- a keyword ending in ``*`` matches a word prefix (``CANDLE*`` matches ``CANDLES``);
- nothing matches: ``other``.

The table was written by reading the most frequent description words of the full file; on it
about 74% of the distinct stock codes and 90% of the rows get a category other than ``other``.
It is data, not logic: change
the table, re-import, retrain.
"""

from __future__ import annotations

import re

OTHER = "other"

# (category, keywords); first match wins.
CATEGORY_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("christmas", ("CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "SNOWFLAKE", "NOEL")),
    ("easter", ("EASTER", "EGG", "EGGS", "CHICK", "CHICKS")),
    (
        "candles & lights",
        (
            "CANDLE*",
            "T-LIGHT*",
            "TEALIGHT*",
            "LANTERN*",
            "LAMP",
            "LIGHTS",
            "LIGHT",
            "NIGHTLIGHT",
            "INCENSE",
            "OIL",
        ),
    ),
    (
        "cards & wrap",
        (
            "CARD",
            "CARDS",
            "WRAP",
            "WRAPPING",
            "TISSUE*",
            "ENVELOPE*",
            "GIFT TAG",
            "TAGS",
            "RIBBON*",
            "STICKER*",
            "CONFETTI",
        ),
    ),
    ("bags", ("BAG", "BAGS", "SHOPPER", "TOTE", "PURSE", "CHARLOTTE", "HANDBAG")),
    (
        "jewellery",
        (
            "NECKLACE*",
            "EARRING*",
            "BRACELET*",
            "RING",
            "RINGS",
            "BROOCH",
            "CHARM",
            "DIAMANTE",
            "BEAD*",
            "BANGLE",
            "HAIR",
            "HAIRCLIP*",
            "JEWEL*",
        ),
    ),
    (
        "kitchen & tea",
        (
            "MUG",
            "MUGS",
            "CUP",
            "CUPS",
            "TEA",
            "TEACUP",
            "TEAPOT",
            "COFFEE",
            "SAUCER",
            "PLATE*",
            "BOWL*",
            "CUTLERY",
            "SPOON*",
            "KITCHEN",
            "PANTRY",
            "BAKING",
            "CAKE",
            "CAKESTAND",
            "JAR",
            "JARS",
            "TIN",
            "TINS",
            "LUNCH",
            "TRAY",
            "NAPKIN*",
            "APRON",
            "TOWEL",
            "JUG",
            "BOTTLE",
            "GLASS",
            "RECIPE",
            "CASES",
            "COASTER*",
            "PLACEMAT*",
            "BEAKER*",
            "STRAWS",
            "BREAD",
            "EGGCUP",
            "DISH",
        ),
    ),
    ("party", ("PARTY", "BUNTING", "BALLOON*", "BIRTHDAY", "GARLAND", "PIZZA", "CANDLES")),
    (
        "stationery",
        (
            "NOTEBOOK",
            "PEN",
            "PENS",
            "PENCIL*",
            "ERASER",
            "RULER",
            "NOTE",
            "PAPER",
            "JOURNAL",
            "DIARY",
            "CALENDAR",
            "STAMP*",
            "BOOK",
            "ALBUM",
            "CHALK",
        ),
    ),
    (
        "toys & kids",
        (
            "TOY",
            "TOYS",
            "GAME",
            "GAMES",
            "DOLL",
            "DOLLY",
            "CHILDRENS",
            "CHILDS",
            "KIDS",
            "PUZZLE*",
            "JIGSAW",
            "SPACEBOY",
            "DOMINOES",
            "SKIPPING",
            "TEDDY",
            "PLAYHOUSE",
            "FELTCRAFT",
            "KNITTING",
            "CRAYONS",
            "COLOURING",
            "MAGIC",
        ),
    ),
    (
        "garden",
        (
            "GARDEN",
            "PLANT*",
            "FLOWER POT",
            "WATERING",
            "BIRDHOUSE",
            "BIRD",
            "FEEDER",
            "PARASOL",
            "HAMMOCK",
            "PICNIC",
            "TRELLIS",
            "THERMOMETER",
        ),
    ),
    (
        "textiles",
        (
            "CUSHION*",
            "THROW",
            "BLANKET",
            "QUILT",
            "DOORMAT",
            "MAT",
            "CURTAIN",
            "HOT WATER",
            "SCARF",
            "GLOVES",
            "SLIPPER*",
            "UMBRELLA",
            "POUFFE",
            "WARMER",
            "SEWING",
            "CROCHET",
            "HAT",
        ),
    ),
    (
        "home decor",
        (
            "FRAME",
            "FRAMES",
            "CLOCK",
            "MIRROR",
            "SIGN",
            "WALL",
            "HOOK",
            "HOOKS",
            "DRAWER",
            "KNOB",
            "DOORSTOP",
            "ORNAMENT",
            "DECORATION",
            "HANGING",
            "HOLDER",
            "VASE",
            "STORAGE",
            "BOX",
            "BOXES",
            "BASKET",
            "PLAQUE",
            "TILE",
            "SHELF",
            "CABINET",
            "WREATH",
            "HEART",
            "HEARTS",
            "CHIME*",
            "DOOR",
            "MAGNET*",
            "LETTERS",
            "BLOCK",
            "TRINKET",
            "RACK",
        ),
    ),
)

_WORD = re.compile(r"[A-Z0-9&][A-Z0-9&'-]*")


def description_words(description: str) -> list[str]:
    """Upper-case words of a description (the tokens the table and item features use)."""
    return _WORD.findall((description or "").upper())


def _compile() -> list[tuple[str, frozenset[str], tuple[str, ...], tuple[tuple[str, ...], ...]]]:
    out = []
    for category, keywords in CATEGORY_RULES:
        exact = frozenset(k for k in keywords if not k.endswith("*") and " " not in k)
        prefixes = tuple(k[:-1] for k in keywords if k.endswith("*"))
        phrases = tuple(tuple(k.split()) for k in keywords if " " in k)
        out.append((category, exact, prefixes, phrases))
    return out


_RULES = _compile()


def derive_category(description: str | None) -> str:
    """The category of a product from its description, by the keyword table; ``other``."""
    words = description_words(description or "")
    if not words:
        return OTHER
    wordset = set(words)
    for category, exact, prefixes, phrases in _RULES:
        if wordset & exact:
            return category
        if prefixes and any(w.startswith(p) for w in words for p in prefixes):
            return category
        for phrase in phrases:
            n = len(phrase)
            if any(tuple(words[i : i + n]) == phrase for i in range(len(words) - n + 1)):
                return category
    return OTHER


CATEGORIES: tuple[str, ...] = tuple(c for c, _ in CATEGORY_RULES) + (OTHER,)
