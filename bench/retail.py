"""Online Retail data, the time-based split and the top-k metrics shared by the quality benchmark.

Protocol (documented in docs/benchmarks.md, "Recommendation quality"):

* rows kept: known customer, invoice not cancelled (no ``C`` prefix), Quantity > 0,
  UnitPrice > 0, StockCode starting with a digit (the data README's purchase filter) and not a
  service coded like a product (``profiles.import_mapping.retail_product_code``: carriage,
  packing charge, image licence, gift voucher), letters upper-cased;
* the time span [first, last] is cut into: test = the last 10%, validation = the 10% before it;
  hyper-parameters are chosen by training on everything before the validation window and scoring
  on it; the final run trains on everything before the test window and scores on it;
* evaluated users: customers with purchases in both the training part and the evaluation window;
  targets are the items they bought in the window that the training part knows (an item never
  seen in training cannot be ranked by any method);
* **new items**: items a customer bought in training are removed from the ranking and from the
  targets, and users left with no target are not evaluated; **all items**: repeats count.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from profiles.import_mapping import retail_product_code

DATA = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "online_retail"
    / "online_retail.csv.gz"
)
K = 10


@dataclass
class Rows:
    """Purchase lines after the filter, one entry per CSV row (arrays of equal length)."""

    invoice: np.ndarray  # str
    item: np.ndarray  # str StockCode
    description: np.ndarray  # str
    quantity: np.ndarray  # int
    ts: np.ndarray  # int epoch seconds (UTC)
    price: np.ndarray  # float
    customer: np.ndarray  # str
    country: np.ndarray  # str

    def select(self, mask: np.ndarray) -> Rows:
        return Rows(**{k: getattr(self, k)[mask] for k in self.__dataclass_fields__})

    def __len__(self) -> int:
        return len(self.item)


def load(path: Path = DATA) -> Rows:
    """Read the CSV and apply the purchase filter."""
    cols: dict[str, list] = {k: [] for k in Rows.__dataclass_fields__}
    with gzip.open(path, "rb") as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"))
        for r in reader:
            cust = r["CustomerID"].strip()
            inv = r["InvoiceNo"]
            code = r["StockCode"].strip().upper()
            if not cust or inv.startswith("C") or retail_product_code(code) is None:
                continue
            qty = int(r["Quantity"])
            price = float(r["UnitPrice"])
            if qty <= 0 or price <= 0:
                continue
            when = datetime.strptime(r["InvoiceDate"], "%Y-%m-%d %H:%M:%S")
            cols["invoice"].append(inv)
            cols["item"].append(code)
            cols["description"].append(r["Description"].strip())
            cols["quantity"].append(qty)
            cols["ts"].append(int(when.replace(tzinfo=UTC).timestamp()))
            cols["price"].append(price)
            cols["customer"].append(cust.removesuffix(".0"))
            cols["country"].append(r["Country"].strip())
    return Rows(
        invoice=np.array(cols["invoice"]),
        item=np.array(cols["item"]),
        description=np.array(cols["description"]),
        quantity=np.array(cols["quantity"], dtype=np.int64),
        ts=np.array(cols["ts"], dtype=np.int64),
        price=np.array(cols["price"], dtype=np.float64),
        customer=np.array(cols["customer"]),
        country=np.array(cols["country"]),
    )


@dataclass
class Split:
    """One train / evaluation cut of the rows."""

    name: str
    train: Rows
    evaluate: Rows
    start: int  # first second of the evaluation window
    end: int  # last second of the evaluation window (inclusive)


def splits(rows: Rows) -> tuple[Split, Split]:
    """(validation split, test split) by the last 10% / the 10% before it of the time span."""
    first, last = int(rows.ts.min()), int(rows.ts.max())
    span = last - first
    test_start = last - span * 0.1
    val_start = last - span * 0.2
    val = Split(
        "validation",
        rows.select(rows.ts < val_start),
        rows.select((rows.ts >= val_start) & (rows.ts < test_start)),
        int(np.ceil(val_start)),
        int(np.ceil(test_start)) - 1,
    )
    test = Split(
        "test",
        rows.select(rows.ts < test_start),
        rows.select(rows.ts >= test_start),
        int(np.ceil(test_start)),
        last,
    )
    return val, test


@dataclass
class Task:
    """Training pairs and evaluation targets indexed like a model's users and items."""

    users: list[str]
    items: list[str]
    user_index: dict[str, int]
    item_index: dict[str, int]
    seen: object  # scipy csr (n_users, n_items) of 0/1: items each user bought in training
    eval_all: dict[int, set[int]] = field(default_factory=dict)
    eval_new: dict[int, set[int]] = field(default_factory=dict)


def task(users: list[str], items: list[str], train_pairs, eval_pairs) -> Task:
    """train_pairs / eval_pairs: iterables of (customer id, item id)."""
    import scipy.sparse as sp

    uidx = {u: i for i, u in enumerate(users)}
    iidx = {s: i for i, s in enumerate(items)}
    r, c = [], []
    for cust, item in train_pairs:
        r.append(uidx[cust])
        c.append(iidx[item])
    seen = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(users), len(items)))
    seen.data[:] = 1.0
    t = Task(users, items, uidx, iidx, seen)
    for cust, item in eval_pairs:
        u, i = uidx.get(cust), iidx.get(item)
        if u is None or i is None:
            continue
        t.eval_all.setdefault(u, set()).add(i)
    for u, targets in t.eval_all.items():
        bought = set(seen.indices[seen.indptr[u] : seen.indptr[u + 1]].tolist())
        new = targets - bought
        if new:
            t.eval_new[u] = new
    return t


def top_k(scores: np.ndarray, k: int = K) -> np.ndarray:
    """Row-wise indices of the k highest scores, best first. scores: (n_users, n_items)."""
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def mask_seen(t: Task, users: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Set the score of every item a user bought in training to -inf (in place)."""
    sub = t.seen[users]
    r, c = sub.nonzero()
    scores[r, c] = -np.inf
    return scores


def metrics(t: Task, users: np.ndarray, recs: np.ndarray, targets: dict[int, set[int]]) -> dict:
    """precision@k, recall@k, catalog coverage (share of training items recommended to anyone)."""
    prec, rec = [], []
    for u, row in zip(users, recs, strict=True):
        want = targets[u]
        hits = sum(1 for i in row if i in want)
        prec.append(hits / len(row))
        rec.append(hits / len(want))
    return {
        "precision": float(np.mean(prec)),
        "recall": float(np.mean(rec)),
        "coverage": len(np.unique(recs)) / len(t.items),
        "users": len(users),
    }


def evaluate(t: Task, score_fn, which: str, batch: int = 1024) -> dict:
    """Score users in batches with score_fn(user_ids) -> (n, n_items) and compute the metrics.

    which: "new" masks training purchases and uses the new-item targets; "all" uses every target.
    """
    targets = t.eval_new if which == "new" else t.eval_all
    users = np.array(sorted(targets))
    recs = []
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        s = np.array(score_fn(chunk), dtype=np.float64, copy=True)
        if which == "new":
            s = mask_seen(t, chunk, s)
        recs.append(top_k(s))
    return metrics(t, users, np.vstack(recs), targets)
