"""Everything held about one customer, for a subject-access request (GDPR art. 15): the
profile store's export (profile, traits, purchases, events, merges) and the feedback on
suggestions recorded for the customer and for every profile merged into it."""

from __future__ import annotations

from typing import Any

from profiles.contact_log import ContactLog
from profiles.store import ProfileStore


def export_customer(
    profiles: ProfileStore, contacts: ContactLog, customer_id: str
) -> dict[str, Any]:
    """The export document (raises ProfileNotFound for an unknown id)."""
    doc = profiles.export(customer_id)
    doc["feedback"] = [
        record
        for cid in (doc["customer_id"], *doc["merged_ids"])
        for record in contacts.feedback_history(cid)
    ]
    return doc
