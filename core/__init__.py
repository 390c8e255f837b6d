"""Vocabulary shared by every room: the domain error bases and the Redis key names."""
