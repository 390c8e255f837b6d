"""``rapport train`` and ``rapport models list|activate|rollback|prune`` (registered in cli.py).

``rapport train`` reads every purchase, profile and product from Redis (or an Online Retail
CSV with ``--from-csv``), trains with a progress bar, prints the holdout report (model vs
popularity), writes the artifact under ``RAPPORT_MODEL_DIR``, registers it and promotes it
when the gate passes. The last line says what happened and the exit status tells a scheduler:
0 activated (or registered only, as ``--no-activate`` asks), 3 trained and registered but not
activated because the gate found it worse than the active model, 1 an error, 2 a usage error.

Its defaults are the tuned production settings (``recommend.model.training.PRODUCTION``,
``recommend.model.dataset.IDS_ONLY``: ids only, 128 components, learning rate 0.02, max_sampled
50, 55 epochs, half-life 60 days; docs/benchmarks.md). ``--features`` also trains on profile
and catalog features (LightFM's own cold start instead of the derived one).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click
from flask.cli import with_appcontext

from core.errors import RapportError
from recommend.catalog.products import Catalog
from service.cli_store import app_state
from service.state import RapportState

if TYPE_CHECKING:
    from recommend.model.dataset import FeatureConfig, TrainingData
    from recommend.model.job import TrainingRun
    from recommend.model.training import TrainConfig

# recommend.model (numpy, scipy, LightFM: about a second) is imported inside the functions that
# use it, so that the other commands and `rapport --help` start at once.

EXIT_NOT_ACTIVATED = 3  # `rapport train`: trained and registered, refused by the promotion gate


def _registry(st: RapportState):
    from recommend.model.registry import ModelRegistry

    return ModelRegistry(
        st.redis,
        st.keys,
        st.config.models_path,
        tolerance=st.config.promote_tolerance,
        keep=st.config.models_keep,
    )


@click.command("train")
@click.option(
    "--loss",
    type=click.Choice(["warp", "warp-kos", "bpr", "logistic"]),
    default="warp",
    show_default=True,
)
@click.option("--components", type=click.IntRange(1, 512), default=128, show_default=True)
@click.option("--epochs", type=click.IntRange(1, 1000), default=55, show_default=True)
@click.option(
    "--learning-rate", type=click.FloatRange(0, 10, min_open=True), default=0.02, show_default=True
)
@click.option(
    "--max-sampled",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="WARP: negatives sampled per positive.",
)
@click.option("--item-alpha", type=click.FloatRange(0), default=1e-6, show_default=True)
@click.option("--user-alpha", type=click.FloatRange(0), default=1e-6, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option(
    "--half-life-days",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="Recency half-life of purchase weights (0: no decay).",
)
@click.option(
    "--features/--ids-only",
    default=False,
    show_default=True,
    help="Train on profile and catalog features too (default: ids only, the tuned setting).",
)
@click.option("--no-refit", is_flag=True, help="Save the evaluated model (skip the refit).")
@click.option("--force", is_flag=True, help="Activate even when the gate says it is worse.")
@click.option("--no-activate", is_flag=True, help="Register only.")
@click.option("--plot", is_flag=True, help="Write learning-curve.png into the version dir.")
@click.option(
    "--from-csv",
    "csv_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Train from a CSV export instead of Redis.",
)
@click.option(
    "--layout",
    type=click.Choice(["online-retail"]),
    default="online-retail",
    show_default=True,
    help="Column layout of --from-csv.",
)
@click.option("--limit", type=click.IntRange(1), help="Read at most N purchase rows (--from-csv).")
@click.option(
    "--load-catalog",
    is_flag=True,
    help="With --from-csv: upsert the CSV's products into the catalog too.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@with_appcontext
def train_command(
    loss,
    components,
    epochs,
    learning_rate,
    max_sampled,
    item_alpha,
    user_alpha,
    threads,
    half_life_days,
    features,
    no_refit,
    force,
    no_activate,
    plot,
    csv_path,
    layout,
    limit,
    load_catalog,
    as_json,
    quiet,
) -> None:
    """Train a model, report it against popularity, register it, promote it if not worse.

    \b
    Exit status:
      0  activated, or registered only as --no-activate asks
      3  trained and registered but not activated: the promotion gate
         found it worse than the active model (--force overrides)
      1  error; 2 usage error
    """
    st = app_state()
    data = _training_data(st, csv_path, layout=layout, limit=limit, load_catalog=load_catalog)
    config, feature_config = _train_params(
        loss=loss,
        components=components,
        epochs=epochs,
        learning_rate=learning_rate,
        max_sampled=max_sampled,
        item_alpha=item_alpha,
        user_alpha=user_alpha,
        threads=threads,
        refit=not no_refit,
        features=features,
        half_life_days=half_life_days,
    )
    run = _train(
        st,
        data,
        config,
        feature_config,
        force=force,
        no_activate=no_activate,
        plot=plot,
        progress=not quiet,
    )
    _print_run(run, as_json=as_json)
    if not run.decision.activated and not no_activate:
        raise SystemExit(EXIT_NOT_ACTIVATED)


def _training_data(
    st: RapportState, csv_path: str | None, *, layout: str, limit: int | None, load_catalog: bool
) -> TrainingData:
    """The purchases, profiles and products to train on: from ``--from-csv`` (upserting its
    products into the catalog with ``--load-catalog``) or from Redis; their counts on stderr."""
    from recommend.model.dataset import load_from_redis, load_online_retail

    if csv_path:
        click.echo(f"reading {csv_path} ({layout})", err=True)
        data = load_online_retail(csv_path, limit=limit)
        if load_catalog:
            _upsert_products(st, data)
    else:
        try:
            data = load_from_redis(st.redis, st.keys)
        except ImportError as exc:
            raise click.ClickException(f"cannot read purchases from Redis: {exc}") from exc
    counts = data.counts()
    click.echo(
        f"data: {counts['lines']} purchase lines, {counts['customers']} customers, "
        f"{counts['orders']} orders, {counts['products']} products",
        err=True,
    )
    return data


def _upsert_products(st: RapportState, data: TrainingData) -> None:
    """The CSV's products into the catalog, 500 at a time."""
    catalog = Catalog(st.redis, st.keys)
    items = list(data.products.values())
    for start in range(0, len(items), 500):
        catalog.upsert_many(items[start : start + 500])
    click.echo(f"catalog: {len(items)} products upserted", err=True)


def _train_params(
    *,
    loss: str,
    components: int,
    epochs: int,
    learning_rate: float,
    max_sampled: int,
    item_alpha: float,
    user_alpha: float,
    threads: int,
    refit: bool,
    features: bool,
    half_life_days: float,
) -> tuple[TrainConfig, FeatureConfig]:
    """The LightFM settings and the features from the options (half-life 0: no decay)."""
    from recommend.model.dataset import IDS_ONLY, FeatureConfig
    from recommend.model.training import TrainConfig

    config = TrainConfig(
        loss=loss,
        no_components=components,
        epochs=epochs,
        learning_rate=learning_rate,
        max_sampled=max_sampled,
        item_alpha=item_alpha,
        user_alpha=user_alpha,
        threads=threads,
        refit=refit,
    )
    feature_config = replace(
        FeatureConfig() if features else IDS_ONLY, half_life_days=half_life_days or None
    )
    return config, feature_config


def _train(
    st: RapportState,
    data: TrainingData,
    config: TrainConfig,
    features: FeatureConfig,
    *,
    force: bool,
    no_activate: bool,
    plot: bool,
    progress: bool,
) -> TrainingRun:
    """Train (with a progress bar unless ``progress`` is false), evaluate, save, register and
    promote through the gate; a refused setting becomes a click error."""
    from recommend.model.job import run_training

    try:
        return run_training(
            st.redis,
            st.keys,
            st.config.models_path,
            data,
            config=config,
            features=features,
            force=force,
            no_activate=no_activate,
            tolerance=st.config.promote_tolerance,
            keep=st.config.models_keep,
            ann_min_items=st.config.ann_min_items,
            plot=plot,
            progress=progress,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def _print_run(run: TrainingRun, *, as_json: bool) -> None:
    """The holdout report, the artifact and the decision (last line), or one JSON document."""
    from recommend.model.training import format_report

    decision = run.decision
    if as_json:
        click.echo(
            json.dumps(
                {
                    "version": run.artifact.version,
                    "path": str(run.artifact.path),
                    "metrics": run.result.metrics,
                    "counts": run.result.counts,
                    "train_seconds": run.result.train_seconds,
                    "decision": decision.as_dict(),
                    "plot": str(run.plot) if run.plot else None,
                },
                indent=2,
            )
        )
        return
    click.echo(format_report(run.result))
    click.echo(f"artifact: {run.artifact.path}")
    if run.plot:
        click.echo(f"learning curve: {run.plot}")
    verb = "ACTIVATED" if decision.activated else "NOT ACTIVATED"
    click.echo(f"{verb} {run.artifact.version}: {decision.reason}")


@click.group("models")
def models_group() -> None:
    """List, activate, roll back and prune model versions."""


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@with_appcontext
def models_list(as_json: bool) -> None:
    """Versions, newest first, with holdout metrics (model and popularity)."""
    registry = _registry(app_state())
    items = registry.list()
    if as_json:
        click.echo(json.dumps({"active": registry.active_version(), "items": items}, indent=2))
        return
    click.echo(
        f"{'':2}{'VERSION':<24} {'CREATED (UTC)':<17} {'P@10':>7} {'R@10':>7} {'AUC':>6} "
        f"{'COVER':>6} {'POP P@10':>9}"
    )
    for r in items:
        m = r.get("metrics", {}).get("model", {})
        p = r.get("metrics", {}).get("popularity", {})
        mark = "*" if r["active"] else ("p" if r["previous"] else " ")
        click.echo(
            f"{mark:<2}{r['version']:<24} {_when(r.get('created_at')):<17} "
            f"{m.get('precision', 0):>7.4f} {m.get('recall', 0):>7.4f} {m.get('auc', 0):>6.3f} "
            f"{m.get('coverage', 0):>6.3f} {p.get('precision', 0):>9.4f}"
        )
    click.echo("(* active, p previous)", err=True)


@models_group.command("activate")
@click.argument("version")
@with_appcontext
def models_activate(version: str) -> None:
    """Activate VERSION (after verifying its artifact); workers swap within seconds."""
    try:
        record = _registry(app_state()).activate(version, action="activate", reason="cli")
    except RapportError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"activated {version} (was {record['previous'] or 'none'})")


@models_group.command("rollback")
@with_appcontext
def models_rollback() -> None:
    """Activate the version that was active before the current one."""
    try:
        record = _registry(app_state()).rollback()
    except RapportError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"rolled back to {record['version']} (from {record['previous']})")


@models_group.command("prune")
@click.option("--keep", type=click.IntRange(1), help="Versions to keep (RAPPORT_MODELS_KEEP).")
@with_appcontext
def models_prune(keep: int | None) -> None:
    """Delete old versions beyond --keep (never the active or the previous one)."""
    removed = _registry(app_state()).prune(keep)
    click.echo(f"removed {len(removed)} version(s){': ' + ', '.join(removed) if removed else ''}")
