"""Models over HTTP (admin): list, active, activate, roll back; a corrupt version is refused
with 409 and the loaded model keeps serving."""

from __future__ import annotations

from recommend.model.artifact import ARRAYS
from recommend.model.job import save_result
from tests.recsys import assert_refused_and_v1_serves, install_model, load_catalog, trained


def test_models_need_admin(api_as, client):
    assert client.get("/v1/models").status_code == 401
    assert api_as("recommend:read").get("/v1/models").status_code == 403
    assert api_as("recommend:read").post("/v1/models/rollback").status_code == 403


def test_list_active_activate_and_rollback(api, app):
    install_model(app, "v1")
    install_model(app, "v2")
    listed = api.get("/v1/models").json
    assert listed["active"] == "v2"
    assert {m["version"]: m["active"] for m in listed["items"]} == {"v1": False, "v2": True}
    assert listed["items"][0]["metrics"]["model"]["precision"] > 0
    active = api.get("/v1/models/active").json
    assert active["active"]["version"] == "v2"
    assert active["serving"] == {
        "state": "loaded: v2",
        "version": "v2",
        "loaded_at": active["serving"]["loaded_at"],
    }

    resp = api.post("/v1/models/rollback")
    assert resp.status_code == 200 and resp.json["version"] == "v1"
    assert api.get("/v1/models").json["active"] == "v1"
    resp = api.post("/v1/models/v2/activate")
    assert resp.status_code == 200 and resp.json["action"] == "activate"
    assert api.post("/v1/models/nope/activate").status_code == 404


def test_rollback_without_history_is_409(api):
    resp = api.post("/v1/models/rollback")
    assert resp.status_code == 409
    assert resp.json["type"] == "urn:rapport:problem:no-previous-model"


def test_tampered_artifact_is_refused_and_the_old_model_keeps_serving(api, app):
    load_catalog(app)
    install_model(app, "v1")
    holder = app.extensions["rapport"].models
    bad = save_result(trained(), holder.registry.model_dir, "v2")
    holder.registry.register(bad)
    (bad.path / ARRAYS).write_bytes((bad.path / ARRAYS).read_bytes()[:-100])

    assert_refused_and_v1_serves(api, app)
    ready = api.get("/readyz").json
    assert ready["checks"]["model"] == "loaded: v1"
