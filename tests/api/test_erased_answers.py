"""An erased customer gets 404 from every per-customer answer, as the profile does (issue 18),
even while the served model was trained before the erasure and still knows the id."""

from __future__ import annotations

from tests.api.test_recommendations import _history_into_redis, served  # noqa: F401
from tests.recsys import install_model

ANSWERS = ("recommendations", "next-best-actions", "greeting")


def test_an_erased_customer_known_to_the_model_is_404(api, served):  # noqa: F811
    st = served.extensions["rapport"]
    st.profiles.create({"email": "c001@example.com"}, customer_id="C001")
    _history_into_redis(served, "C001")
    for answer in ANSWERS:
        assert api.get(f"/v1/profiles/C001/{answer}").status_code == 200, answer
    assert api.delete("/v1/profiles/C001").status_code == 200
    assert api.get("/v1/profiles/C001").status_code == 404
    for answer in ANSWERS:
        resp = api.get(f"/v1/profiles/C001/{answer}")
        assert resp.status_code == 404, (answer, resp.json)
        assert resp.json["type"].endswith("not-found"), resp.json
    # a customer the model knows who never had a profile here (a model from a CSV) still
    # gets recommendations, and one created again under the erased id is served again
    assert api.get("/v1/profiles/C002/recommendations").status_code == 200
    st.profiles.create({"email": "again@example.com"}, customer_id="C001")
    assert api.get("/v1/profiles/C001/recommendations").status_code == 200


def test_a_new_model_does_not_bring_an_erased_customer_back(api, served):  # noqa: F811
    st = served.extensions["rapport"]
    assert api.get("/v1/profiles/C003/recommendations").status_code == 200  # the model knows C003
    st.profiles.create({"email": "c003@example.com"}, customer_id="C003")
    assert api.delete("/v1/profiles/C003").status_code == 200
    install_model(served, "v2")  # a model made from data that still held the customer
    assert api.get("/v1/profiles/C003/recommendations").status_code == 404
