"""Names shared by greetings, next-best actions and the contact policy: the channels an agent
talks to a customer on, and a customer's time zone."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CHANNELS: tuple[str, ...] = ("chat", "email", "phone")


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA zone called ``name``, or None for no name or one the zone database lacks."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None
