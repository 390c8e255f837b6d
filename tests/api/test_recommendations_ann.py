"""Recommendations through the API from the nearest-neighbour index (issue 19), with the
catalog-size threshold set low: the same lists as exact scoring, and a damaged index refused
while the old model keeps serving."""

from __future__ import annotations

import pytest

from recommend.model.ann import INDEX_FILE
from recommend.model.job import save_result
from tests.recsys import assert_refused_and_v1_serves, load_catalog, trained


@pytest.fixture
def app_config(app_config):
    return {**app_config, "ann_min_items": 10}


def _activate(app, version, result, ann_min_items):
    holder = app.extensions["rapport"].models
    artifact = save_result(result, holder.registry.model_dir, version, ann_min_items=ann_min_items)
    holder.registry.register(artifact)
    holder.registry.activate(version)
    holder.refresh()
    return artifact


def test_served_from_the_index_as_exact_scoring_would(api, app):
    load_catalog(app)
    holder = app.extensions["rapport"].models
    _activate(app, "v1", trained(), ann_min_items=1_000_000)  # no index: exact
    assert holder.current.recommender.ann is None
    urls = [f"/v1/profiles/C{u:03d}/recommendations?limit=5" for u in range(12)]
    urls += ["/v1/profiles/C004/recommendations?limit=5&category=bags&max_price=4"]
    exact = [[i["product_id"] for i in api.get(u).json["items"]] for u in urls]
    _activate(app, "v2", trained(), ann_min_items=10)
    assert holder.current.version == "v2" and holder.current.recommender.ann is not None
    served = [[i["product_id"] for i in api.get(u).json["items"]] for u in urls]
    assert served == exact


def test_a_damaged_index_is_refused_and_the_old_model_keeps_serving(api, app):
    load_catalog(app)
    holder = app.extensions["rapport"].models
    _activate(app, "v1", trained(), ann_min_items=10)
    bad = save_result(trained(), holder.registry.model_dir, "v2", ann_min_items=10)
    holder.registry.register(bad)
    index = bad.path / INDEX_FILE
    index.write_bytes(index.read_bytes()[:-64])

    assert_refused_and_v1_serves(api, app)
