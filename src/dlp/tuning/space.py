"""Search spaces: which hyperparameters a study may tune, their defaults, and how a
sampled point becomes a training job's config.

Pure pydantic, no Optuna: the API validates spaces with it, and the worker's
``dlp.tuning.engine`` turns each parameter into an Optuna ``suggest_*`` call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from dlp.errors import ValidationError as RequestInvalid
from dlp.ml.config import (
    CNNConfig,
    MLPConfig,
    TextConfig,
    TrainingConfig,
    model_config_adapter,
)

Family = Literal["mlp", "cnn", "text"]
Choice = bool | int | float | str


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatParam(_Spec):
    """A real number in ``[low, high]``, sampled uniformly or, with ``log``, log-uniformly."""

    type: Literal["float"] = "float"
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatParam:
        _check_range(self.low, self.high, self.log)
        return self


class IntParam(_Spec):
    """An integer in ``[low, high]``, sampled uniformly or, with ``log``, log-uniformly."""

    type: Literal["int"] = "int"
    low: int = Field(ge=-(2**31), le=2**31)
    high: int = Field(ge=-(2**31), le=2**31)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntParam:
        _check_range(self.low, self.high, self.log)
        return self


class CategoricalParam(_Spec):
    """One of a list of values."""

    type: Literal["categorical"] = "categorical"
    choices: list[Choice] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _distinct(self) -> CategoricalParam:
        if len({repr(choice) for choice in self.choices}) != len(self.choices):
            raise ValueError("choices must be distinct")
        return self


def _check_range(low: float, high: float, log: bool) -> None:
    if low > high:
        raise ValueError(f"low ({low}) must not exceed high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log-scale range needs low > 0 (got {low})")


ParamSpec = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
SearchSpace = dict[str, ParamSpec]
MAX_PARAMS = 20
_space_adapter: TypeAdapter[SearchSpace] = TypeAdapter(SearchSpace)


def parse_space(data: dict[str, Any]) -> SearchSpace:
    """A search space stored as JSON, parsed back."""
    return _space_adapter.validate_python(data)


# Where each tunable name goes: the training loop's config (any family) or the model's.
TRAINING_PARAMS: dict[str, str] = {
    "learning_rate": "float",
    "weight_decay": "float",
    "batch_size": "int",
    "optimizer": "categorical",
    "lr_schedule": "categorical",
}
MODEL_PARAMS: dict[Family, dict[str, str]] = {
    "mlp": {"hidden_size": "int", "n_layers": "int", "dropout": "float"},
    "cnn": {"base_channels": "int", "blocks_per_stage": "int", "dropout": "float"},
    "text": {"variant": "categorical", "embedding_dim": "int", "ngrams": "int", "dropout": "float"},
}


SMALL_TEXT_ROWS = 5_000
"""Up to this many texts, ``auto`` also tries the Transformer encoder (slow on CPU beyond)."""


def tunable(family: Family) -> dict[str, str]:
    """Every parameter name ``family`` can tune, with the kind of value it takes."""
    return {**TRAINING_PARAMS, **MODEL_PARAMS[family]}


def default_space(family: Family, *, n_rows: int) -> SearchSpace:
    """The space a study searches when none is given, sized by the dataset.

    Small tables want small batches (a few hundred rows make few steps an epoch);
    large ones wide layers and large batches. Small text datasets try both text
    architectures (n-gram bag and Transformer encoder), larger ones the bag only.
    """
    training: SearchSpace = {
        "learning_rate": FloatParam(low=1e-4, high=3e-2, log=True),
        "weight_decay": FloatParam(low=1e-6, high=1e-1, log=True),
    }
    if family == "mlp":
        if n_rows < 2_000:
            widths, batches = (16, 256), [8, 16, 32, 64]
        elif n_rows < 50_000:
            widths, batches = (32, 512), [32, 64, 128, 256]
        else:
            widths, batches = (64, 1024), [128, 256, 512, 1024]
        return {
            **training,
            "batch_size": CategoricalParam(choices=list(batches)),
            "hidden_size": IntParam(low=widths[0], high=widths[1], log=True),
            "n_layers": IntParam(low=1, high=3),
            "dropout": FloatParam(low=0.0, high=0.5),
        }
    if family == "cnn":
        return {
            **training,
            "batch_size": CategoricalParam(choices=[32, 64, 128]),
            "base_channels": IntParam(low=8, high=64, log=True),
            "blocks_per_stage": IntParam(low=1, high=2),
            "dropout": FloatParam(low=0.0, high=0.4),
        }
    text: SearchSpace = {
        "learning_rate": FloatParam(low=1e-3, high=1e-1, log=True),
        "batch_size": CategoricalParam(choices=[16, 32, 64]),
        # Multiples of the transformer's 4 heads, so either variant can take any of them.
        "embedding_dim": CategoricalParam(choices=[16, 32, 64, 128]),
        "ngrams": IntParam(low=1, high=2),
        "dropout": FloatParam(low=0.0, high=0.4),
    }
    if n_rows <= SMALL_TEXT_ROWS:
        text["variant"] = CategoricalParam(choices=["bag", "transformer"])
    return text


def apply_params(
    family: Family, model: dict[str, Any], training: dict[str, Any], params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model and training configs of a trial: the study's base with ``params`` set.

    Raises ``ValueError`` (pydantic's) when a value is outside what the config allows.
    """
    model = {**model, "type": family}
    training = {**training}
    for name, value in params.items():
        if name in TRAINING_PARAMS:
            training[name] = value
        else:
            _MODEL_SETTERS[family](model, name, value)
    resolved_model = model_config_adapter.validate_python(model).model_dump(mode="json")
    resolved_training = TrainingConfig.model_validate(training).model_dump(mode="json")
    return resolved_model, resolved_training


def _set_mlp(model: dict[str, Any], name: str, value: Any) -> None:
    widths = list(model.get("hidden_sizes") or MLPConfig().hidden_sizes)
    if name == "hidden_size":
        model["hidden_sizes"] = [int(value)] * len(widths)
    elif name == "n_layers":
        model["hidden_sizes"] = [widths[0]] * int(value)
    else:
        model[name] = value


def _set_cnn(model: dict[str, Any], name: str, value: Any) -> None:
    if name == "base_channels":
        stages = len(model.get("channels") or CNNConfig().channels)
        model["channels"] = [int(value) * 2**stage for stage in range(stages)]
    else:
        model[name] = value


def _set_text(model: dict[str, Any], name: str, value: Any) -> None:
    model[name] = value


_MODEL_SETTERS: dict[Family, Callable[[dict[str, Any], str, Any], None]] = {
    "mlp": _set_mlp,
    "cnn": _set_cnn,
    "text": _set_text,
}

_DEFAULT_MODELS: dict[Family, dict[str, Any]] = {
    "mlp": MLPConfig().model_dump(mode="json"),
    "cnn": CNNConfig().model_dump(mode="json"),
    "text": TextConfig().model_dump(mode="json"),
}


def check_space(
    family: Family, space: SearchSpace, model: dict[str, Any], training: dict[str, Any]
) -> None:
    """Refuse names the family cannot tune, kinds that do not fit them, and bounds or
    choices its config would reject (each extreme is tried), naming the parameter."""
    if not space:
        raise RequestInvalid("search_space must name at least one parameter")
    if len(space) > MAX_PARAMS:
        raise RequestInvalid(f"search_space names {len(space)} parameters; at most {MAX_PARAMS}")
    names = tunable(family)
    for name, spec in space.items():
        kind = names.get(name)
        if kind is None:
            raise RequestInvalid(
                f"search_space: {family} models cannot tune {name!r}; "
                f"tunable: {', '.join(sorted(names))}"
            )
        if spec.type not in (kind, "categorical") and not (kind == "float" and spec.type == "int"):
            raise RequestInvalid(f"search_space: {name!r} takes {kind} values, not {spec.type}")
        for value in _extremes(spec):
            try:
                apply_params(family, model, training, {name: value})
            except ValidationError as exc:
                problem = exc.errors()[0]["msg"]
                raise RequestInvalid(
                    f"search_space: {name!r} = {value!r} is not allowed ({problem})"
                ) from exc


def _extremes(spec: FloatParam | IntParam | CategoricalParam) -> list[Any]:
    if isinstance(spec, CategoricalParam):
        return list(spec.choices)
    return [spec.low, spec.high]


def default_model(family: Family) -> dict[str, Any]:
    """The family's default architecture, as a config dict."""
    return dict(_DEFAULT_MODELS[family])
