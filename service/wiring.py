"""The composition root: every store and service of one app, built once by ``create_app``.

Views, hooks and commands reach them one way, ``state()`` (``service/state.py``); nothing is
built per request. Construction makes no Redis call (scripts register lazily), so building an
app against a Redis that is down still works and answers 503s.

Imports recommend.model (numpy, scipy, LightFM: about half a second): ``create_app`` imports
this module when it builds an app, so ``import service`` (every CLI command) stays quick.
"""

from __future__ import annotations

import time

import redis
from flask import Flask

from profiles.activity import ActivityStore
from profiles.contact_log import ContactLog
from profiles.customer_view import CustomerView
from profiles.event_batch import EventBatch
from profiles.keys import Keys
from profiles.segment_ingest import SegmentIngest
from profiles.store import ProfileStore
from recommend.catalog.products import CachedCatalog, Catalog
from recommend.engage.actions import ActionCatalog, NextBestActions
from recommend.engage.adaptive import AdaptivePropensity
from recommend.engage.contact import ContactPolicy
from recommend.engage.facts import FactsLoader
from recommend.engage.greetings import Greeter, GreetingTemplates
from recommend.engage.product_picks import product_picker
from recommend.model.answers import RecommendationAnswers
from service.auth import ApiKeyStore
from service.config import Config
from service.model_holder import ModelHolder
from service.state import Engagement, RapportState, state_of


def build_state(config: Config, client: redis.Redis) -> RapportState:
    """Every store and service over ``client``, wired once."""
    clock = time.time
    keys = Keys(config.key_prefix)
    catalog = Catalog(client, keys, clock)
    activity = ActivityStore(client, keys, clock, catalog.category_of)
    profiles = ProfileStore(client, keys, clock, activity)
    customers = CustomerView(client, keys, profiles)
    products = CachedCatalog(catalog, check_seconds=0.0 if config.testing else 1.0)
    models = ModelHolder(
        client,
        keys,
        config.models_path,
        poll_seconds=0.0 if config.testing else config.model_poll_seconds,
        tolerance=config.promote_tolerance,
        keep=config.models_keep,
        share_arrays=bool(config.share_model_arrays),
        ann_min_items=config.ann_min_items,
    )
    control, explore = config.nba_shares
    learning = AdaptivePropensity(
        control_share=control, explore_share=explore, salt=config.nba_salt, model=config.nba_model
    )
    policy = ContactPolicy(
        client, keys, clock, learning=learning, impression_window=config.nba_impression_window
    )
    actions = ActionCatalog(client, keys, clock)
    templates = GreetingTemplates(client, keys, clock)
    pick = product_picker(customers, lambda: models.current.recommender, products.lookup)
    return RapportState(
        config=config,
        redis=client,
        keys=keys,
        api_keys=ApiKeyStore(client, keys, cache_seconds=config.auth_cache_seconds),
        profiles=profiles,
        activity=activity,
        catalog=catalog,
        products=products,
        customers=customers,
        contacts=ContactLog(client, keys),
        events=EventBatch(profiles, activity),
        segment=SegmentIngest(profiles, activity),
        models=models,
        recommendations=RecommendationAnswers(
            customers,
            lambda: models.current,
            products.lookup,
            offline=models.offline_fallback,
            rest_start=policy.rest_start,
        ),
        engage=Engagement(
            facts=FactsLoader(profiles, activity, catalog),
            greeter=Greeter(templates, clock),
            templates=templates,
            actions=actions,
            policy=policy,
            nba=NextBestActions(actions, policy, clock, pick, learning),
        ),
    )


def warm_up(app: Flask) -> None:
    """In a fresh worker (gunicorn ``post_worker_init``): load the active model now, before
    the first request, and start the polling thread."""
    holder = state_of(app).models
    holder.refresh_safely()
    holder.ensure_started()
