"""The recommender model: training data, LightFM training, artifacts and the registry, serving and
its popularity fallback."""
