"""Engagement: greetings, next-best actions, their rules and the contact policy."""
