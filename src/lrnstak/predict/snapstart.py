"""SnapStart for the predict function (template parameter PredictSnapStart, off by default).

Before the snapshot: the models PREDICT_PRELOAD_MODELS names are loaded into the model cache, which also
imports everything a prediction needs (numpy, scikit-learn's estimators, the safe loader), so a restored
function answers its first request warm. A model that cannot be loaded is skipped with a warning: the
snapshot must not fail because a model was deleted.

After a restore: the snapshot may be days old, and the monotonic clock the model cache measures its window
with did not run while it waited. Every cached model and `latest` alias is therefore revalidated against
the registry on its next request (one GetItem; the loaded model is kept if its save is unchanged), and the
AWS clients' pooled connections, dead by then, are dropped.

The hooks are registered through `snapshot_restore_py`, which the Lambda Python runtime provides; outside
Lambda (tests, the local stack) there is nothing to register and the hooks are plain functions.
"""

import importlib
from collections.abc import Callable
from typing import Any

from lrnstak.errors import LrnstakError
from lrnstak.naming import LATEST
from lrnstak.observability import logger
from lrnstak.predict.service import get_model_cache
from lrnstak.settings import get_settings
from lrnstak.storage.clients import drop_connections, get_clients

RUNTIME_HOOKS_MODULE = "snapshot_restore_py"


def preload_names(setting: str) -> list[tuple[str, str]]:
    """`"iris,wine:v2"` -> [("iris", "latest"), ("wine", "v2")]."""
    pairs = []
    for item in setting.split(","):
        name, _, version = item.strip().partition(":")
        if name:
            pairs.append((name, version or LATEST))
    return pairs


def preload_models() -> list[tuple[str, str]]:
    """Loads the configured models into the model cache; the (model, version) pairs it loaded."""
    cache = get_model_cache()
    loaded = []
    for model, version in preload_names(get_settings().predict_preload_models):
        try:
            lookup = cache.get(model, version)
        except LrnstakError as error:
            logger.warning("model not preloaded", extra={"model": model, "version": version, "reason": error.message})
            continue
        loaded.append((model, lookup.record.version))
    logger.info("models preloaded for the snapshot", extra={"models": [f"{m}:{v}" for m, v in loaded]})
    return loaded


def refresh_after_restore() -> None:
    get_model_cache().revalidate_all()
    drop_connections(get_clients())


def register_runtime_hooks() -> bool:
    """Registers the hooks with the Lambda runtime; False where there is no runtime to register with."""
    try:
        hooks: Any = importlib.import_module(RUNTIME_HOOKS_MODULE)
    except ImportError:
        return False
    register_before: Callable[..., Any] = hooks.register_before_snapshot
    register_after: Callable[..., Any] = hooks.register_after_restore
    register_before(preload_models)
    register_after(refresh_after_restore)
    return True
