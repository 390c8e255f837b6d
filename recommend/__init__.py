"""Recommendations: LightFM training, artifacts, serving and next-best actions (no Flask here)."""
