"""Why a product the customer never bought is recommended: the reason text of the discover
strategy (and of the new products in a blend). Bought products carry the buy-again reason of
``recommend.model.repurchase``.

In order of preference: the bought product it is closest to (cosine of item embeddings, at
least ``BlendConfig.anchor_min_cosine``), a stated preferred category, a product selling fast
this week (the top 2% by recent buyers), the customer's country for a customer without
purchases, else a generic line.
"""

from __future__ import annotations

import numpy as np

from recommend.model.model_arrays import ModelArrays
from recommend.model.serving import CustomerContext, Lookup


def discover_reasons(
    model: ModelArrays,
    ctx: CustomerContext,
    picked: list[str],
    lookup: Lookup,
    *,
    anchor_min_cosine: float,
) -> dict[str, str]:
    """A short reason per new product in ``picked``: the bought product it is closest to
    (item embeddings), a stated preference, what sells now, the customer's country."""
    anchors = [
        model.item_index[p]
        for p in dict.fromkeys(ln.product_id for ln in ctx.purchases)
        if p in model.item_index
    ]
    best: dict[str, tuple[int, float]] = {}
    anchor_names: dict[str, dict] = {}
    if anchors and picked:
        unit_anchor = model.item_unit[anchors]
        for pid in picked:
            sims = unit_anchor @ model.item_unit[model.item_index[pid]]
            j = int(np.argmax(sims))
            best[pid] = (anchors[j], float(sims[j]))
        anchor_names = lookup(model.item_ids[a] for a, s in best.values() if s >= anchor_min_cosine)
    prefs = set(ctx.preferred_categories)
    out = {}
    for pid in picked:
        i = model.item_index[pid]
        anchor = best.get(pid)
        if anchor and anchor[1] >= anchor_min_cosine:
            aid = model.item_ids[anchor[0]]
            name = (anchor_names.get(aid) or {}).get("name") or aid
            out[pid] = f"customers who bought {name} also bought this"
        elif model.item_categories[i] in prefs:
            out[pid] = f"matches your preference for {model.item_categories[i]}"
        elif len(model.trending) > i and model.trending[i]:
            out[pid] = "selling fast this week"
        elif not ctx.purchases and ctx.country:
            out[pid] = f"liked by customers like you ({ctx.country})"
        else:
            out[pid] = "recommended for you from what similar customers buy"
    return out
