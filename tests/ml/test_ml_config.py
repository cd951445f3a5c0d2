"""Request schemas of dlp.ml.config, and the rule that importing them stays light."""

from __future__ import annotations

import subprocess
import sys

import pydantic
import pytest

from dlp.ml.config import (
    AutoModelConfig,
    InputSpec,
    MLPConfig,
    TrainingConfig,
    model_config_adapter,
    resolve_model_config,
)


def test_training_config_defaults() -> None:
    config = TrainingConfig()
    assert (config.epochs, config.batch_size, config.optimizer) == (100, 32, "adamw")
    assert config.learning_rate == 1e-3
    assert config.weight_decay == 1e-2
    assert config.early_stopping_patience == 10
    assert config.validation_fraction == 0.2
    assert config.seed == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 10_001),
        ("batch_size", 0),
        ("batch_size", 65_537),
        ("learning_rate", 0),
        ("learning_rate", 11),
        ("learning_rate", float("nan")),
        ("optimizer", "rmsprop"),
        ("weight_decay", -0.1),
        ("weight_decay", 1.5),
        ("early_stopping_patience", -1),
        ("validation_fraction", 0),
        ("validation_fraction", 0.9),
        ("seed", -1),
        ("unknown_field", 1),
    ],
)
def test_training_config_rejects(field: str, value: object) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        TrainingConfig.model_validate({field: value})
    assert info.value.errors()[0]["loc"][0] == field


def test_model_config_is_a_discriminated_union() -> None:
    parsed = model_config_adapter.validate_python({"type": "mlp", "hidden_sizes": [16, 8]})
    assert isinstance(parsed, MLPConfig)
    assert parsed.hidden_sizes == [16, 8]
    assert isinstance(model_config_adapter.validate_python({"type": "auto"}), AutoModelConfig)
    for bad in (
        {"type": "gbdt"},
        {"type": "cnn", "channels": []},
        {"type": "text", "variant": "transformer", "embedding_dim": 30, "heads": 4},
        {"type": "mlp", "hidden_sizes": []},
        {"type": "mlp", "hidden_sizes": [0]},
        {"type": "mlp", "hidden_sizes": [8] * 17},
        {"type": "mlp", "dropout": 1.0},
        {"type": "auto", "hidden_sizes": [8]},
    ):
        with pytest.raises(pydantic.ValidationError):
            model_config_adapter.validate_python(bad)


def test_auto_sizes_the_mlp_by_table_size_and_mlp_stays() -> None:
    small = resolve_model_config(
        AutoModelConfig(), data_kind="tabular", spec=InputSpec(n_features=5), n_rows=400
    )
    assert small == MLPConfig(hidden_sizes=[64], dropout=0.2)
    large = resolve_model_config(
        AutoModelConfig(), data_kind="tabular", spec=InputSpec(n_features=300), n_rows=50_000
    )
    assert large == MLPConfig(hidden_sizes=[512, 64], dropout=0.1)
    custom = MLPConfig(hidden_sizes=[4], dropout=0.0)
    assert (
        resolve_model_config(custom, data_kind="tabular", spec=InputSpec(n_features=5), n_rows=10)
        is custom
    )


def test_importing_config_does_not_import_torch_or_numpy() -> None:
    code = (
        "import sys, dlp.ml, dlp.ml.config; "
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
