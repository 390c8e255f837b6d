"""Every HTTP test module also runs on the Redis Cluster, or says here why it does not."""

from pathlib import Path

HERE = Path(__file__).parent
NOT_ON_CLUSTER = {
    "test_redis_down": "starts and stops its own single redis-server",
    "test_recommendations_offline": "starts and stops its own single redis-server",
    "test_write_refusals": "sets maxmemory / min-replicas on the one server it refuses writes on",
    "test_audit_declared": "reads the app's route table only; no Redis behaviour to re-run",
}


def test_every_api_test_module_has_a_cluster_twin():
    api = sorted(p.stem for p in (HERE.parent / "api").glob("test_*.py"))
    missing = [
        name
        for name in api
        if name not in NOT_ON_CLUSTER
        and not (HERE / f"test_cluster_{name.removeprefix('test_')}.py").exists()
    ]
    assert not missing, (
        f"add tests/cluster/test_cluster_<name>.py (see test_cluster_auth.py) for {missing}, "
        "or list the module in NOT_ON_CLUSTER with the reason"
    )
