"""What an agent reads about a segment of the adaptive propensity (``adaptive``): who it is
and how its customers answered an action."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def label(key: Sequence[str], segment: Mapping[str, str]) -> str:
    """Who a segment is, for the agent: ``gold customers on chat``."""
    v = {d: segment[d] for d in key}
    who = f"{v['tier']} customers" if "tier" in v else "customers"
    parts = []
    if "channel" in v:
        parts.append(f"on {v['channel']}")
    if "country" in v:
        parts.append(f"in {v['country']}" if len(v["country"]) == 2 else "with no country")
    if "context" in v:
        parts.append(f"in context {v['context']}")
    if "frequency" in v:
        parts.append(f"with {v['frequency']} orders")
    if "recency" in v:
        recency = v["recency"]
        parts.append("who never bought" if recency == "never" else f"last buying {recency} ago")
    if "category" in v:
        parts.append(f"favouring {v['category']}")
    if "support" in v:
        parts.append(
            "with an open support contact" if v["support"] == "open" else "with no open contact"
        )
    return " ".join([who, *parts])


def reason(accepted: int, shown: int, key: Sequence[str], segment: Mapping[str, str]) -> str:
    offers = "offer" if shown == 1 else "offers"
    return f"accepted by {accepted / shown:.0%} of {label(key, segment)} ({shown:,} {offers})"
