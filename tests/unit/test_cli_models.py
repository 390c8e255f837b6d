"""`rapport train --from-csv` and `rapport models ...` through click, against the test Redis."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from profiles import activity
from profiles.keys import Keys
from recommend.catalog.products import Catalog
from service.cli import cli
from service.cli_training import EXIT_NOT_ACTIVATED
from tests.recsys import purchase, record_purchase, synthetic


def invoke(args, redis_url, tmp_path):
    env = {"REDIS_URL": redis_url, "RAPPORT_DATA_DIR": str(tmp_path)}
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def online_retail_csv(path):
    """The synthetic purchases written in the Online Retail layout (a few hundred rows)."""
    data = synthetic(n_customers=60)
    codes = {pid: str(10000 + i) for i, pid in enumerate(sorted(data.products))}
    orders: dict[str, int] = {}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "InvoiceNo",
                "StockCode",
                "Description",
                "Quantity",
                "InvoiceDate",
                "UnitPrice",
                "CustomerID",
                "Country",
            ]
        )
        for ln in data.lines:
            invoice = orders.setdefault(ln.order_id, 500000 + len(orders))
            when = datetime.fromtimestamp(ln.purchased_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
            product = data.products[ln.product_id]
            w.writerow(
                [
                    invoice,
                    codes[ln.product_id],
                    product["description"],
                    int(ln.quantity),
                    when,
                    "2.50",
                    f"{ln.customer_id[1:]}.0",
                    data.customers[ln.customer_id]["country"],
                ]
            )
    return len(data.lines)


def test_train_from_csv_then_manage_versions(redis_client, redis_url, tmp_path):
    path = tmp_path / "retail.csv"
    rows = online_retail_csv(path)
    assert 300 < rows < 2000
    first = invoke(
        [
            "train",
            "--from-csv",
            str(path),
            "--epochs",
            "5",
            "--components",
            "8",
            "--quiet",
            "--json",
            "--load-catalog",
        ],
        redis_url,
        tmp_path,
    )
    assert first.exit_code == 0, first.output
    one = json.loads(first.stdout)
    assert one["decision"]["activated"] is True
    assert one["metrics"]["model"]["precision"] > one["metrics"]["popularity"]["precision"]
    assert redis_client.exists(Keys().product("10000"))

    second = invoke(
        ["train", "--from-csv", str(path), "--epochs", "2", "--quiet", "--no-activate"],
        redis_url,
        tmp_path,
    )
    assert second.exit_code == 0, second.output
    assert "model vs popularity" in second.stdout
    assert "NOT ACTIVATED" in second.stdout and "--no-activate" in second.stdout

    listed = json.loads(invoke(["models", "list", "--json"], redis_url, tmp_path).stdout)
    assert listed["active"] == one["version"]
    newer = listed["items"][0]["version"]
    assert newer != one["version"]

    activated = invoke(["models", "activate", newer], redis_url, tmp_path)
    assert activated.exit_code == 0 and f"activated {newer}" in activated.stdout
    rolled = invoke(["models", "rollback"], redis_url, tmp_path)
    assert rolled.exit_code == 0 and f"rolled back to {one['version']}" in rolled.stdout
    bad = invoke(["models", "activate", "no-such-version"], redis_url, tmp_path)
    assert bad.exit_code == 1 and "no model version" in bad.output
    pruned = invoke(["models", "prune", "--keep", "1"], redis_url, tmp_path)
    assert pruned.exit_code == 0 and "removed 0" in pruned.stdout  # active + previous stay
    table = invoke(["models", "list"], redis_url, tmp_path).stdout
    assert "P@10" in table and one["version"] in table


def test_train_refused_by_the_gate_exits_3(redis_client, redis_url, tmp_path):
    """A model the promotion gate refuses is registered, not activated, and exits 3."""
    path = tmp_path / "retail.csv"
    online_retail_csv(path)
    args = ["train", "--from-csv", str(path), "--epochs", "2", "--components", "8", "--quiet"]
    first = invoke([*args, "--json"], redis_url, tmp_path)
    assert first.exit_code == 0, first.output
    active = json.loads(first.stdout)["version"]
    # make the active model better than anything the next run can train
    record_key = Keys().model_version(active)
    record = json.loads(redis_client.get(record_key))
    record["metrics"]["model"]["precision"] = 1.0
    redis_client.set(record_key, json.dumps(record))

    refused = invoke(args, redis_url, tmp_path)
    assert refused.exit_code == EXIT_NOT_ACTIVATED == 3, refused.output
    assert "NOT ACTIVATED" in refused.stdout and "below active" in refused.stdout
    as_json = invoke([*args, "--json"], redis_url, tmp_path)
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["decision"]["activated"] is False
    listed = json.loads(invoke(["models", "list", "--json"], redis_url, tmp_path).stdout)
    assert listed["active"] == active and len(listed["items"]) == 3

    forced = invoke([*args, "--force"], redis_url, tmp_path)
    assert forced.exit_code == 0, forced.output
    assert forced.stdout.splitlines()[-1].startswith("ACTIVATED") and "forced" in forced.stdout


@pytest.mark.skipif(
    not hasattr(activity, "ActivityStore"), reason="profiles.activity.ActivityStore not built yet"
)
def test_train_from_redis(redis_client, redis_url, tmp_path):
    data = synthetic(n_customers=40)
    keys = Keys("rp")
    Catalog(redis_client, keys).upsert_many(list(data.products.values()))
    orders: dict[tuple[str, str], list] = {}
    for ln in data.lines:
        orders.setdefault((ln.customer_id, ln.order_id), []).append(ln)
    for (cid, order_id), lines in orders.items():
        record_purchase(
            redis_client,
            keys,
            cid,
            purchase(order_id, lines[0].purchased_at, *[ln.product_id for ln in lines]),
        )
    result = invoke(
        ["train", "--epochs", "3", "--components", "8", "--quiet", "--json"], redis_url, tmp_path
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["decision"]["activated"] is True
    assert body["counts"]["customers"] == 40
    assert body["counts"]["lines"] == len({(ln.order_id, ln.product_id) for ln in data.lines})
