"""How a trained model is measured: its scorer and the popularity baseline's, precision@k,
recall@k, AUC and catalog coverage on the holdout, and the four rows of a training report.

Both scorers go through the same :func:`evaluate`, so model and popularity are compared like
with like. With ``exclude_seen`` ("new items", ``TrainConfig``'s default) the products a
customer bought in training are removed from the ranking *and* from the targets, which is
what LightFM contributes (``discover``); repeat purchases are the job of ``buy_again``, which
needs no model. :func:`holdout_metrics` also reports the other mode.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from recommend.model.dataset import Matrices


# -- scorers ------------------------------------------------------------------------------------
def representations(
    features: sp.csr_matrix, embeddings: np.ndarray, biases: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix (n, n_features) @ embeddings (n_features, d) -> vectors (n, d) float32
    and biases (n,) float32: LightFM's own user/item representation."""
    vectors = np.asarray(features @ embeddings, dtype=np.float32)
    bias = np.asarray(features @ biases, dtype=np.float32).ravel()
    return vectors, bias


def model_scores(model: LightFM, m: Matrices) -> Callable[[np.ndarray], np.ndarray]:
    """A function rows -> scores (len(rows), n_items) for the users at ``rows``."""
    uvec, _ = representations(m.user_features, model.user_embeddings, model.user_biases)
    ivec, ibias = representations(m.item_features, model.item_embeddings, model.item_biases)

    def score(rows: np.ndarray) -> np.ndarray:
        return uvec[rows] @ ivec.T + ibias

    return score


def item_popularity(m: Matrices) -> np.ndarray:
    """(n_items,) number of distinct buyers per item in ``m``'s interactions."""
    return np.asarray((m.interactions.tocsr() > 0).sum(axis=0), dtype=np.float32).ravel()


def popularity_scores(m: Matrices) -> Callable[[np.ndarray], np.ndarray]:
    pop = item_popularity(m)
    # a tiny deterministic tie-break so equal counts do not all land on the lowest index
    pop = pop + np.linspace(0, 1e-3, len(pop), dtype=np.float32)[::-1]
    return lambda rows: np.broadcast_to(pop, (len(rows), len(pop)))


# -- evaluation ---------------------------------------------------------------------------------
def evaluate(
    score: Callable[[np.ndarray], np.ndarray],
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    *,
    k: int = 10,
    exclude_seen: bool = True,
    batch: int = 512,
) -> dict[str, float]:
    """precision@k, recall@k, AUC and catalog coverage over users with a target.

    ``score(rows)`` returns (len(rows), n_items) scores. With ``exclude_seen`` the user's
    training items are removed from both the ranking and the targets. Coverage: the share of
    items that appear in at least one top-k list."""
    train = train.tocsr()
    test = test.tocsr()
    targets = test.copy()
    if exclude_seen:
        targets = targets - targets.multiply(train > 0)
        targets.eliminate_zeros()
    users = np.flatnonzero(np.diff(targets.indptr) > 0)
    n_items = test.shape[1]
    if len(users) == 0:
        return {"precision": 0.0, "recall": 0.0, "auc": 0.0, "coverage": 0.0, "users": 0}
    precisions, recalls, aucs = [], [], []
    shown = np.zeros(n_items, dtype=bool)
    for start in range(0, len(users), batch):
        rows = users[start : start + batch]
        scores = np.array(score(rows), dtype=np.float64, copy=True)
        seen = train[rows]
        if exclude_seen:
            r, c = seen.nonzero()
            scores[r, c] = -np.inf
        kk = min(k, n_items)
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        shown[top.ravel()] = True
        tgt = targets[rows]
        ranks = scores.argsort(axis=1).argsort(axis=1)  # 0 = lowest
        for j in range(len(rows)):
            pos = tgt.indices[tgt.indptr[j] : tgt.indptr[j + 1]]
            hits = np.isin(top[j], pos).sum()
            precisions.append(hits / kk)
            recalls.append(hits / len(pos))
            n_excluded = seen.indptr[j + 1] - seen.indptr[j] if exclude_seen else 0
            n_neg = n_items - n_excluded - len(pos)
            if n_neg > 0:
                # ranks count excluded items (scored -inf) below everything: remove them
                below = ranks[j, pos] - n_excluded
                # positives below a positive are not negatives: subtract them
                pos_rank_order = np.argsort(np.argsort(ranks[j, pos]))
                aucs.append(float(np.mean((below - pos_rank_order) / n_neg)))
    return {
        "precision": float(np.mean(precisions)),
        "recall": float(np.mean(recalls)),
        "auc": float(np.mean(aucs)) if aucs else 0.0,
        "coverage": float(shown.mean()),
        "users": int(len(users)),
    }


def holdout_metrics(
    model: LightFM,
    m: Matrices,
    train_csr: sp.csr_matrix,
    final: dict[str, float],
    *,
    k: int,
    exclude_seen: bool,
) -> dict[str, dict[str, float]]:
    """The model's final holdout metrics beside popularity's, with and without seen items."""
    pop = popularity_scores(m)
    metrics = {
        "model": final,
        "popularity": evaluate(pop, train_csr, m.test, k=k, exclude_seen=exclude_seen),
        "model_all_items": evaluate(
            model_scores(model, m),
            train_csr,
            m.test,
            k=k,
            exclude_seen=not exclude_seen,
        ),
        "popularity_all_items": evaluate(
            pop, train_csr, m.test, k=k, exclude_seen=not exclude_seen
        ),
    }
    if not exclude_seen:  # keep the keys meaning what they say
        metrics["model_new_items"] = metrics.pop("model_all_items")
        metrics["popularity_new_items"] = metrics.pop("popularity_all_items")
    return metrics
