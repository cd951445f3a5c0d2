"""Optuna, as the workers use it: the study's storage, its sampler and pruner, and one
trial's ask, report and tell.

The studies live in the platform's own database through Optuna's RDB storage, so a
trial may run on any worker of any host and a restart loses nothing. Optuna keeps
its own tables and its own ``alembic_version``, which would collide with dlp's: on
PostgreSQL they live in a schema of their own (``optuna``) of the same database; on
SQLite, whose databases are files, in a file next to dlp's (``Settings.optuna_url``).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import Any

import optuna
import structlog
from sqlalchemy.exc import SQLAlchemyError

from dlp.config import Settings
from dlp.db import schema_engine_options
from dlp.tuning.space import CategoricalParam, FloatParam, IntParam, SearchSpace
from dlp.tuning.space import ParamSpec as _ParamSpec

log = structlog.get_logger(__name__)
OPTUNA_SCHEMA = "optuna"
MIN_TRIALS_FOR_IMPORTANCE = 4
STORAGE_ATTEMPTS = 5

optuna.logging.set_verbosity(optuna.logging.WARNING)

_storages: dict[str, optuna.storages.RDBStorage] = {}
_storages_lock = threading.Lock()


def storage(settings: Settings) -> optuna.storages.RDBStorage:
    """This process's Optuna storage for the installation (built once: it checks its schema)."""
    url = settings.optuna_url
    with _storages_lock:
        if url not in _storages:
            _storages[url] = _build_storage(url)
        return _storages[url]


def _build_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage, its tables created if missing.

    Two workers taking their first trial at once both try to create the schema and
    tables; the loser's error means they now exist, so it simply tries again.
    """
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=schema_engine_options(url, OPTUNA_SCHEMA)
            )
        except SQLAlchemyError as exc:
            if attempt == STORAGE_ATTEMPTS - 1:
                raise
            log.info("tuning.storage_retry", error=str(exc).splitlines()[0])
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def open_study(settings: Settings, config: dict[str, Any], name: str, *, salt: str) -> optuna.Study:
    """The study, created by whichever worker gets there first.

    Each trial job samples with a seed of its own, derived from the study's seed and
    ``salt``: two workers asking at once must not draw the same random start points.
    """
    n_trials_hint = int(config.get("n_trials", 20))
    seed = int.from_bytes(hashlib.sha256(f"{config['seed']}:{salt}".encode()).digest()[:4], "big")
    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=max(3, min(10, n_trials_hint // 3))
    )
    return optuna.create_study(
        study_name=name,
        storage=storage(settings),
        direction=config["direction"],
        sampler=sampler,
        pruner=_pruner(config),
        load_if_exists=True,
    )


def load_study(settings: Settings, name: str) -> optuna.Study:
    """An existing study, to read (its sampler and pruner are not needed for that)."""
    return optuna.load_study(study_name=name, storage=storage(settings))


def _pruner(config: dict[str, Any]) -> optuna.pruners.BasePruner:
    epochs = int(config["training"]["epochs"])
    kind = config["pruner"]
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    return optuna.pruners.NopPruner()


def ask(study: optuna.Study, space: SearchSpace) -> tuple[optuna.trial.Trial, dict[str, Any]]:
    """A new trial and the parameters it samples from ``space``."""
    trial = study.ask()
    return trial, {name: _suggest(trial, name, spec) for name, spec in space.items()}


def reopen(settings: Settings, study: optuna.Study, number: int) -> optuna.trial.Trial | None:
    """Trial ``number`` again, for a retry of a trial whose worker was lost; None when an
    earlier attempt already told its outcome."""
    rdb = storage(settings)
    trial_id = rdb.get_trial_id_from_study_id_trial_number(
        rdb.get_study_id_from_name(study.study_name), number
    )
    if rdb.get_trial(trial_id).state.is_finished():
        return None
    return optuna.trial.Trial(study, trial_id)


def _suggest(trial: optuna.trial.Trial, name: str, spec: _ParamSpec) -> Any:
    if isinstance(spec, CategoricalParam):
        return trial.suggest_categorical(name, spec.choices)
    if isinstance(spec, IntParam):
        return trial.suggest_int(name, spec.low, spec.high, log=spec.log)
    assert isinstance(spec, FloatParam)
    return trial.suggest_float(name, spec.low, spec.high, log=spec.log)


def report(trial: optuna.trial.Trial, value: float, epoch: int) -> bool:
    """Record the epoch's objective value; True when the pruner says stop."""
    if not math.isfinite(value):
        return False
    trial.report(value, epoch)
    return trial.should_prune()


def tell(study: optuna.Study, number: int, state: str, value: float | None = None) -> None:
    """The trial's outcome: ``complete`` with its value, ``pruned`` or ``fail``."""
    states = {
        "complete": optuna.trial.TrialState.COMPLETE,
        "pruned": optuna.trial.TrialState.PRUNED,
        "fail": optuna.trial.TrialState.FAIL,
    }
    values = value if state == "complete" else None
    study.tell(number, values, state=states[state], skip_if_finished=True)


def importances(study: optuna.Study) -> dict[str, float] | None:
    """Parameter importances once enough trials completed (None before, or if they vary
    too little to tell)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
    try:
        found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:
        log.info("tuning.importances_unavailable", error=str(exc))
        return None
    return {name: round(float(value), 6) for name, value in found.items()}
