"""Search spaces without a server: defaults per family and size, how a sampled point
becomes a trial's config, which trial is best, and where Optuna's tables go."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlp.config import Settings
from dlp.errors import ValidationError
from dlp.ml.config import TrainingConfig
from dlp.training.models import TrainingJob
from dlp.tuning.schemas import best_trial
from dlp.tuning.space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    apply_params,
    check_space,
    default_model,
    default_space,
    parse_space,
    tunable,
)

TRAINING = TrainingConfig().model_dump(mode="json")


@pytest.mark.parametrize("family", ["mlp", "cnn", "text"])
def test_default_spaces_are_valid_for_their_family(family: str) -> None:
    for n_rows in (100, 10_000, 1_000_000):
        space = default_space(family, n_rows=n_rows)  # type: ignore[arg-type]
        assert set(space) <= set(tunable(family))  # type: ignore[arg-type]
        check_space(family, space, default_model(family), TRAINING)  # type: ignore[arg-type]


def test_default_tabular_space_grows_with_the_table() -> None:
    small = default_space("mlp", n_rows=300)
    large = default_space("mlp", n_rows=200_000)
    assert isinstance(small["hidden_size"], IntParam) and isinstance(large["hidden_size"], IntParam)
    assert small["hidden_size"].high < large["hidden_size"].high
    assert isinstance(small["batch_size"], CategoricalParam)
    assert isinstance(large["batch_size"], CategoricalParam)
    assert max(small["batch_size"].choices) < min(large["batch_size"].choices)  # type: ignore[type-var]


def test_sampled_point_becomes_the_trial_config() -> None:
    model, training = apply_params(
        "mlp",
        default_model("mlp"),
        TRAINING,
        {"hidden_size": 48, "n_layers": 3, "dropout": 0.25, "learning_rate": 0.01},
    )
    assert model == {"type": "mlp", "hidden_sizes": [48, 48, 48], "dropout": 0.25}
    assert training["learning_rate"] == 0.01 and training["epochs"] == TRAINING["epochs"]

    cnn, _ = apply_params("cnn", default_model("cnn"), TRAINING, {"base_channels": 12})
    assert cnn["channels"] == [12, 24]


def test_space_round_trips_through_json() -> None:
    space = {
        "learning_rate": FloatParam(low=1e-4, high=1e-1, log=True),
        "n_layers": IntParam(low=1, high=4),
        "optimizer": CategoricalParam(choices=["adam", "sgd"]),
    }
    stored = {name: spec.model_dump() for name, spec in space.items()}
    assert parse_space(stored) == space


def test_value_outside_the_config_bounds_is_refused() -> None:
    with pytest.raises(ValidationError, match="batch_size"):
        check_space("mlp", {"batch_size": IntParam(low=0, high=64)}, default_model("mlp"), TRAINING)


def test_optuna_tables_live_beside_dlp_tables(tmp_path: Path) -> None:
    embedded = Settings(data_dir=tmp_path)
    assert embedded.optuna_url == f"sqlite:///{tmp_path / 'dlp.optuna.db'}"
    postgres = Settings(data_dir=tmp_path, database_url="postgresql://u:p@db:5432/dlp")
    assert postgres.optuna_url == "postgresql+psycopg://u:p@db:5432/dlp"


def _trial(number: int, value: float, val_loss: float, status: str = "succeeded") -> TrainingJob:
    return TrainingJob(
        status=status, trial_number=number, trial_value=value, metrics={"val_loss": val_loss}
    )


def test_best_trial_breaks_ties_by_validation_loss() -> None:
    trials = [
        _trial(0, 1.0, 0.20),
        _trial(1, 1.0, 0.05),
        _trial(2, 0.9, 0.01),
        _trial(3, 1.0, 0.01, status="pruned"),
    ]
    best = best_trial(trials, maximize=True)
    assert best is not None and best.trial_number == 1
    lowest = best_trial(trials, maximize=False)
    assert lowest is not None and lowest.trial_number == 2
    assert best_trial([_trial(0, 1.0, 0.1, status="failed")], maximize=True) is None
