"""Customer profiles: the domain model and its Redis storage (no Flask here)."""
